package auth

import (
	"crypto/x509"
	"fmt"
	"strings"
	"unicode"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/wsfleet/wsfleet/api/policy"
)

// certIdentity is the node a verified client certificate names:
//
//  1. its URI SAN, which must then be the only one and a SPIFFE ID
//     spiffe://<trust-domain>/node/<ID> or
//     spiffe://<trust-domain>/pool/<POOL>/node/<ID>;
//  2. else its first DNS SAN;
//  3. else its subject's common name.
//
// The node may act as exactly that id (never a pattern: a "*" in a DNS
// name or CN is refused), in the pool its SPIFFE ID names, or else in
// certPools (--client-cert-pools; none by default, so a certificate
// without a pool in it acts in no pool until the operator says which).
// The trust domain is not checked: the --client-ca bundle is the trust
// anchor, and it should sign node certificates only.
func certIdentity(c *x509.Certificate, certPools Patterns) (Identity, error) {
	switch len(c.URIs) {
	case 0:
	case 1:
		sid, err := spiffeid.FromURI(c.URIs[0])
		if err != nil {
			return Identity{}, fmt.Errorf("%w: URI SAN %q is not a SPIFFE ID: %v", ErrCertIdentity, c.URIs[0].String(), err)
		}
		node, pool, ok := nodePath(sid.Path())
		if !ok {
			return Identity{}, fmt.Errorf("%w: SPIFFE ID %s is neither spiffe://<trust-domain>/node/<ID> nor spiffe://<trust-domain>/pool/<POOL>/node/<ID>", ErrCertIdentity, sid)
		}
		pools := certPools
		if pool != "" {
			if err := policy.ValidatePoolName(pool); err != nil {
				return Identity{}, fmt.Errorf("%w: SPIFFE ID %s: %v", ErrCertIdentity, sid, err)
			}
			pools = Patterns{pool}
		}
		return Identity{Name: sid.String(), Role: RoleNode, Credential: "cert:" + sid.String(), Nodes: Patterns{node}, Pools: pools}, nil
	default:
		return Identity{}, fmt.Errorf("%w: %d URI SANs; a node certificate has one SPIFFE ID", ErrCertIdentity, len(c.URIs))
	}
	name, from := c.Subject.CommonName, "cn"
	if len(c.DNSNames) > 0 {
		name, from = c.DNSNames[0], "dns"
	}
	switch {
	case name == "":
		return Identity{}, fmt.Errorf("%w: no URI SAN, DNS SAN or common name", ErrCertIdentity)
	case len(name) > maxPatternLength:
		return Identity{}, fmt.Errorf("%w: the %s name is longer than %d", ErrCertIdentity, from, maxPatternLength)
	case strings.Contains(name, "*"):
		return Identity{}, fmt.Errorf("%w: %s name %q is a wildcard, not one node", ErrCertIdentity, from, name)
	case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0:
		return Identity{}, fmt.Errorf("%w: %s name %q has spaces or control characters", ErrCertIdentity, from, name)
	}
	who := from + ":" + name
	return Identity{Name: who, Role: RoleNode, Credential: "cert:" + who, Nodes: Patterns{name}, Pools: certPools}, nil
}

// nodePath splits a SPIFFE path "/node/<ID>" or "/pool/<POOL>/node/<ID>".
// spiffeid has already refused empty, "." and ".." segments.
func nodePath(path string) (node, pool string, ok bool) {
	seg := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case len(seg) == 2 && seg[0] == "node":
		return seg[1], "", true
	case len(seg) == 4 && seg[0] == "pool" && seg[2] == "node":
		return seg[3], seg[1], true
	}
	return "", "", false
}
