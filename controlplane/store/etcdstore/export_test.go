package etcdstore

import "google.golang.org/grpc"

// WithDialOptions adds gRPC dial options (interceptors) to cfg's etcd
// client, so that a test can make an etcd call fail the way a network does.
func WithDialOptions(cfg Config, opts ...grpc.DialOption) Config {
	cfg.dialOptions = opts
	return cfg
}
