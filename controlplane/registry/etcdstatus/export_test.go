package etcdstatus

// Encode and Decode are a record's value, for the tests.
var (
	Encode = encode
	Decode = decode
)
