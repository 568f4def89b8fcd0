// Package policyfile reads and writes policy files: YAML or JSON documents
// that map 1:1 onto the wsfleet.v1.Policy message, with durations written the
// way people write them ("10s", "1m30s", "500ms").
//
// A file holds either a bare Policy or a whole PolicyRevision document (what
// `wsctl policy get -o yaml|json` prints). Encode and Decode are inverse: any
// message Encode writes, Decode reads back to an equal message, so a printed
// revision can be edited and applied again.
//
// The package has no state and no goroutines; every function is safe for
// concurrent use.
package policyfile
