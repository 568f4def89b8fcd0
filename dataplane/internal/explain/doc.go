// Package explain keeps what a node decided for each recent connection
// attempt, so that the client that made it can ask: a browser is never told
// the HTTP status of a failed handshake (nor anything of a connection cut
// without a close frame), and GET /ws/explain?trace_id= hands it the class
// instead.
//
// A Record is kept for Window (60 s by default) and answered only to the
// client address that made the attempt: Lookup with another address, an
// unknown trace id and an expired one are the same miss. The Store holds at
// most MaxRecords records and MaxBytes bytes of them; over either bound the
// oldest record goes first, so a flood of rejections costs bounded memory
// and only shortens how long the oldest attempts stay explainable.
//
// # Concurrency
//
// A Store is safe for concurrent use; Add and Lookup take one short mutex
// and never block otherwise. It starts no goroutines: expired records are
// dropped by the Add and Lookup that find them.
package explain
