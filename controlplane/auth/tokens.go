package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Role is what a caller may do.
type Role string

// The roles. Every token has exactly one.
const (
	RoleAdmin  Role = "admin"
	RoleViewer Role = "viewer"
	RoleNode   Role = "node"
	// RolePublisher may only publish (PublishService.Publish), to the
	// pools its token lists: a product's backend.
	RolePublisher Role = "publisher"
)

func (r Role) valid() bool {
	return r == RoleAdmin || r == RoleViewer || r == RoleNode || r == RolePublisher
}

// Identity is an authenticated caller.
type Identity struct {
	// Name identifies the caller in audit lines and as a revision's author:
	// a token's name, or a client certificate's SPIFFE ID or name.
	Name string
	Role Role
	// Credential names the credential itself: "token:<name>" for a tokens
	// file entry, "cert:<identity>" for a client certificate, "dev" in dev
	// mode. Two streams with the same Credential came with the same token
	// entry (whatever its secret after a rotation) or a certificate of the
	// same identity; a node's watch stream may be replaced only by one of
	// the same Credential.
	Credential string
	// Nodes and Pools are the node ids and pools the caller may act as in
	// Watch, ReportTelemetry and Deliveries (AuthorizeNode). Only node
	// credentials have Nodes: an admin, viewer or publisher acts as no
	// node. A publisher's Pools are the pools it may publish to
	// (AuthorizePublish). In dev mode both are "*".
	Nodes, Pools Patterns
}

// minTokenLength keeps guessable tokens out of the file; 16 characters of a
// random string is far beyond online guessing.
const minTokenLength = 16

// tokensFile is the on-disk shape:
//
//	tokens:
//	  - name: alice
//	    role: admin
//	    token: "a-long-random-string"
//	  - name: ci
//	    role: viewer
//	    sha256: "<hex of sha256(token)>"  # keeps the secret out of the file
//	  - name: edge-nodes
//	    role: node
//	    sha256: "<hex of sha256(token)>"
//	    nodes: ["edge-*"]   # the node ids it may act as
//	    pools: ["default"]  # the pools those nodes may be in
//	  - name: orders-backend
//	    role: publisher
//	    sha256: "<hex of sha256(token)>"
//	    pools: ["shop"]     # the pools it may publish to
//
// A node token must list its nodes and pools, a publisher token its pools
// (fail closed: a forgotten list would otherwise make one leaked token any
// node of the fleet, or a voice in every pool); ["*"] allows any, and must
// be written out.
type tokensFile struct {
	Tokens []tokenEntry `json:"tokens"`
}

type tokenEntry struct {
	Name   string   `json:"name"`
	Role   Role     `json:"role"`
	Token  string   `json:"token,omitempty"`
	SHA256 string   `json:"sha256,omitempty"`
	Nodes  []string `json:"nodes,omitempty"`
	Pools  []string `json:"pools,omitempty"`
}

// Tokens maps token digests to identities. Immutable once built.
type Tokens struct {
	byDigest map[[sha256.Size]byte]Identity
}

// Len is the number of configured tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byDigest)
}

// lookup finds the identity of a presented token. Only digests are compared,
// so the map never holds a secret and timing reveals nothing about it.
func (t *Tokens) lookup(token string) (Identity, bool) {
	if t == nil || token == "" {
		return Identity{}, false
	}
	id, ok := t.byDigest[sha256.Sum256([]byte(token))]
	return id, ok
}

// LoadTokensFile reads and validates a tokens file. Every problem is
// reported, each naming its entry.
func LoadTokensFile(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokensFile, err)
	}
	return ParseTokens(data)
}

// ParseTokens parses the YAML (or JSON) content of a tokens file.
func ParseTokens(data []byte) (*Tokens, error) {
	var f tokensFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTokensFile, err)
	}
	t := &Tokens{byDigest: make(map[[sha256.Size]byte]Identity, len(f.Tokens))}
	var problems []string
	names := map[string]bool{}
	for i, e := range f.Tokens {
		where := fmt.Sprintf("tokens[%d]", i)
		if e.Name == "" {
			problems = append(problems, where+".name: required")
		} else if names[e.Name] {
			problems = append(problems, fmt.Sprintf("%s.name: %q is used twice", where, e.Name))
		}
		names[e.Name] = true
		if !e.Role.valid() {
			problems = append(problems, fmt.Sprintf("%s.role: %q is not one of admin, viewer, node, publisher", where, e.Role))
		}
		nodes, pools, bad := entryScope(where, e)
		problems = append(problems, bad...)
		var digest [sha256.Size]byte
		switch {
		case e.Token != "" && e.SHA256 != "":
			problems = append(problems, where+": set token or sha256, not both")
			continue
		case e.Token != "":
			if len(e.Token) < minTokenLength {
				problems = append(problems, fmt.Sprintf("%s.token: shorter than %d characters", where, minTokenLength))
				continue
			}
			digest = sha256.Sum256([]byte(e.Token))
		case e.SHA256 != "":
			b, err := hex.DecodeString(strings.TrimSpace(e.SHA256))
			if err != nil || len(b) != sha256.Size {
				problems = append(problems, where+".sha256: not 64 hex characters")
				continue
			}
			copy(digest[:], b)
		default:
			problems = append(problems, where+": token or sha256 required")
			continue
		}
		if _, dup := t.byDigest[digest]; dup {
			problems = append(problems, where+": the same token is listed twice")
			continue
		}
		t.byDigest[digest] = Identity{Name: e.Name, Role: e.Role, Credential: "token:" + e.Name, Nodes: nodes, Pools: pools}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrTokensFile, strings.Join(problems, "; "))
	}
	return t, nil
}

// entryScope checks the nodes and pools of one entry: both required for a
// node token, pools (only) for a publisher token, neither for the others
// (an admin is not a node: nodes use node credentials, so that what a node
// says is always a node's word; an admin publishes to any pool).
func entryScope(where string, e tokenEntry) (nodes, pools Patterns, problems []string) {
	switch e.Role {
	case RoleNode:
	case RolePublisher:
		if len(e.Nodes) > 0 {
			problems = append(problems, fmt.Sprintf("%s.nodes: publisher token %q names nodes; only a node token does (a publisher lists only its pools)", where, e.Name))
		}
		if len(e.Pools) == 0 {
			problems = append(problems, fmt.Sprintf(`%s.pools: publisher token %q names no pools; list the pools it may publish to (["*"] for any)`, where, e.Name))
		}
		pools, bad := parsePatterns(where+".pools", e.Pools, true)
		return nil, pools, append(problems, bad...)
	default:
		if len(e.Nodes) > 0 || len(e.Pools) > 0 {
			problems = append(problems, fmt.Sprintf("%s: token %q has role %q; only a node token names nodes and pools (a publisher token only pools)", where, e.Name, e.Role))
		}
		return nil, nil, problems
	}
	if len(e.Nodes) == 0 {
		problems = append(problems, fmt.Sprintf(`%s.nodes: node token %q names no node ids; list the ids it may act as (exact, "prefix-*", or ["*"] for any)`, where, e.Name))
	}
	if len(e.Pools) == 0 {
		problems = append(problems, fmt.Sprintf(`%s.pools: node token %q names no pools; list the pools its nodes may be in (["*"] for any)`, where, e.Name))
	}
	nodes, bad := parsePatterns(where+".nodes", e.Nodes, false)
	problems = append(problems, bad...)
	pools, bad = parsePatterns(where+".pools", e.Pools, true)
	return nodes, pools, append(problems, bad...)
}
