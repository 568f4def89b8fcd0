package etcdstore_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The embedded etcd server and its clients stop their goroutines on Close
// (etcdtest.Start registers it with the test): nothing of etcd's is
// ignored here.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
