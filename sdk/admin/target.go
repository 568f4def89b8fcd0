package admin

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// listScheme is the scheme of the resolver that serves an address list. It
// is registered on each Client's connection alone (grpc.WithResolvers),
// never in gRPC's global registry, so two Clients with different lists
// never share it.
const listScheme = "wsfleet-replicas"

// serviceConfig picks one replica per connection and shuffles the replicas
// first, so every call and stream of a Client goes to the same replica and
// a fleet of nodes spreads over the replicas instead of all attaching to the
// first one. When that replica's connection breaks, pick_first goes idle;
// the next call tries the replicas in the same shuffled order, moving on at
// once when one refuses and after 250 ms (Happy Eyeballs) when one does not
// answer. round_robin would keep a connection to every replica from every
// node for a stream that uses one.
const serviceConfig = `{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}`

// replicas splits Addr into the addresses of the control plane's replicas.
// A list ("a:7400,b:7400") gives its entries, each a host:port; anything
// else is one gRPC target, returned as is (a name that resolves to several
// addresses is still one entry: gRPC's DNS resolver finds them).
func replicas(addr string) ([]string, error) {
	if !strings.Contains(addr, ",") {
		return []string{addr}, nil
	}
	parts := strings.Split(addr, ",")
	seen := make(map[string]bool, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("%w: address list %q has an empty entry", ErrConfig, addr)
		}
		if err := checkHostPort(p); err != nil {
			return nil, fmt.Errorf("%w: address list %q: %q %v; a list holds host:port entries only", ErrConfig, addr, p, err)
		}
		if seen[p] {
			return nil, fmt.Errorf("%w: address list %q names %s twice", ErrConfig, addr, p)
		}
		seen[p] = true
		parts[i] = p
	}
	return parts, nil
}

// checkHostPort accepts host:port with a non-empty host and a numeric port,
// which is what a list entry must be: a scheme ("dns:///...") cannot be
// mixed into a list.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("is not host:port")
	}
	if host == "" {
		return fmt.Errorf("has no host")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("has no valid port")
	}
	return nil
}

// target returns the gRPC target for addrs and the options it needs. One
// entry is dialled as the target it is. A list is served by a static
// resolver with one endpoint per replica; each address is its own TLS
// server name (and :authority) unless serverName names one for all.
func target(addrs []string, serverName string) (string, []grpc.DialOption) {
	if len(addrs) == 1 {
		return addrs[0], nil
	}
	endpoints := make([]resolver.Endpoint, len(addrs))
	for i, a := range addrs {
		ra := resolver.Address{Addr: a}
		if serverName == "" {
			// Without it gRPC would check every replica's certificate
			// against the target, which for a list names no host.
			ra.ServerName = a
		}
		endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{ra}}
	}
	r := manual.NewBuilderWithScheme(listScheme)
	// The manual resolver replays its state whenever gRPC rebuilds it (on
	// leaving idle mode), so the list survives an idle Client.
	r.InitialState(resolver.State{Endpoints: endpoints})
	// The target's endpoint is the channel's default authority, used only
	// when no address carries its own (serverName set): the first replica,
	// a valid authority, rather than the comma-separated list.
	return listScheme + ":///" + addrs[0], []grpc.DialOption{grpc.WithResolvers(r)}
}
