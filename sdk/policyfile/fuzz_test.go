package policyfile_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic, and
// whatever it accepts must survive Encode → Decode unchanged in both formats.
func FuzzDecode(f *testing.F) {
	for _, m := range []proto.Message{policy.Default(), richPolicy(), richRevision()} {
		for _, e := range encoders {
			data, err := e.enc(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	for _, s := range []string{
		"",
		"{}",
		"heartbeat:\n  interval: 10 seconds\n",
		"heartbeat: {interval: 1.000000001s, timeout: 315576000000s}\n",
		`{"limits": {"maxConnections": "12", "messageBurst": 1e3}}`,
		`{"breaker": {"failureRatio": "NaN"}}`,
		"origins:\n  allow: ['*', \"https://*.example.com\", \"line\\nbreak\", yes, '']\n",
		"pool: x\nrevision: '9007199254740993'\npolicy: {origins: {allow_missing: true}}\n",
		"create_time: 2026-01-02T03:04:05.123+05:30\npolicy: {}\n",
		"- 1\n- 2\n",
		"a: &a [*a]\n",
		"message: \"a\\x85b\\x7fc\\u2028\"\npolicy: {origins: {allow: [\" x \"]}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := policyfile.Decode(data)
		if err != nil {
			return
		}
		if doc.Policy == nil {
			t.Fatal("Decode succeeded without a policy")
		}
		var msg proto.Message = doc.Policy
		if doc.Pool != "" || doc.Revision != 0 {
			msg = &wsfleetv1.PolicyRevision{Pool: doc.Pool, Revision: doc.Revision, Policy: doc.Policy}
		}
		for _, e := range encoders {
			out, err := e.enc(msg)
			if err != nil {
				t.Fatalf("%s: encoding what Decode accepted: %v", e.name, err)
			}
			again, err := policyfile.Decode(out)
			if err != nil {
				t.Fatalf("%s: decoding what Encode wrote: %v\n%s", e.name, err, out)
			}
			if !proto.Equal(doc.Policy, again.Policy) || doc.Pool != again.Pool || doc.Revision != again.Revision {
				t.Fatalf("%s: round trip changed the document:\nbefore %v\nafter  %v\n%s", e.name, doc, again, out)
			}
		}
	})
}
