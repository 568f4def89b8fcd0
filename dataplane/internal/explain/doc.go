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
// What it answers leaks nothing a port scan could use: only the address
// that made the attempt gets an answer, only about that attempt, and only
// what the node had already told it (its status or close code, spelled
// out); anyone else gets the miss of an id that never existed, so not even
// the id's existence shows. Nothing about other clients, pools or the
// policy's contents is kept here at all. The node's endpoint adds a
// per-address rate limit (dataplane, explain.go).
//
// # Concurrency
//
// A Store is safe for concurrent use; Add and Lookup take one short mutex
// and never block otherwise. It starts no goroutines: expired records are
// dropped by the Add and Lookup that find them.
package explain
