package auth

import (
	"strings"
	"testing"
	"unicode/utf8"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

func TestADevNameIsCutOnARuneBoundary(t *testing.T) {
	a, err := New(Config{Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{
		"a" + strings.Repeat("é", 40),           // the 64-byte cut falls inside an é
		strings.Repeat("€", 30),                 // three-byte runes
		"bob\xff\xfe" + strings.Repeat("x", 80), // invalid bytes
	} {
		ctx, err := a.AuthFunc(callCtx(wsfleetv1.PolicyService_ApplyPolicy_FullMethodName, "", UserHeader, user))
		if err != nil {
			t.Fatal(err)
		}
		id, _ := FromContext(ctx)
		if !utf8.ValidString(id.Name) || len(id.Name) > len("dev:")+64 {
			t.Fatalf("name %q for %q: want valid UTF-8 of at most 68 bytes", id.Name, user)
		}
		if id2, err := a.AuthenticateToken(user); err != nil || !utf8.ValidString(id2.Name) {
			t.Fatalf("console login name %q, %v", id2.Name, err)
		}
	}
}
