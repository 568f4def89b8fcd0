package damagelog

import (
	"errors"
	"fmt"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestALogReportsEachKeyOnceAndStaysBounded(t *testing.T) {
	log, hook := test.NewNullLogger()
	d := Log{Logger: log}
	bad := errors.New("cannot parse")
	for range 3 {
		d.Skip("proposal", "proposals/2", bad)
	}
	if d.Count() != 1 || len(hook.AllEntries()) != 1 {
		t.Fatalf("one key skipped three times: count %d, %d log lines; want 1 and 1", d.Count(), len(hook.AllEntries()))
	}
	if e := hook.LastEntry(); e.Level != logrus.ErrorLevel || e.Data["key"] != "proposals/2" || e.Data[logrus.ErrorKey] != bad {
		t.Fatalf("log line %v %v, want an error naming key proposals/2 and the cause", e.Level, e.Data)
	}
	for i := range MaxKeys + 10 {
		d.Skip("proposal", fmt.Sprint("proposals/x", i), bad)
	}
	if d.Count() != MaxKeys {
		t.Fatalf("count %d after more keys than remembered, want %d", d.Count(), MaxKeys)
	}
	if n := len(hook.AllEntries()); n != MaxKeys+1 {
		t.Fatalf("%d log lines, want one per remembered key and one saying the rest are not logged (%d)", n, MaxKeys+1)
	}
}
