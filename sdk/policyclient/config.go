package policyclient

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// Backoff defaults, as the issue fixes them: a first retry within half a
// second, and never more than 30s between attempts once the control plane
// has been gone a while.
const (
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// MaxCacheBytes bounds what is read from the cache file. A valid revision
// is far smaller (at most 1000 origins of at most 512 characters); anything
// bigger is not a file this package wrote and is ignored unread.
const MaxCacheBytes = 4 << 20

// MaxNackBytes bounds the error text of a NACK. The control plane keeps it
// per node and shows it in `wsctl nodes list`; an Apply error that lists a
// thousand violations must not become a megabyte per node there. Longer
// texts are cut on a UTF-8 boundary and marked as truncated.
const MaxNackBytes = 4 << 10

// Config configures a Client. Only Conn, NodeID and Apply are required.
type Config struct {
	// Conn reaches the control plane (sdk/admin.Dial(...).Conn()). The
	// caller dials and closes it; any number of Clients may share one, each
	// with its own Watch stream. Set gRPC keepalive on it if idle streams
	// must be noticed to be dead: a healthy watch stream may carry nothing
	// for days, so the client has no idle timeout of its own.
	Conn *grpc.ClientConn
	// NodeID identifies this node to the control plane; unique per fleet.
	NodeID string
	// Pool is the node's pool. Default policy.DefaultPool; must be a valid
	// pool name.
	Pool string
	// Labels are free-form (zone, version...); copied at New.
	Labels map[string]string
	// Build is the node's build version, shown to operators.
	Build string
	// Address is where clients connect to this node, shown to operators.
	Address string
	// Apply is called with each new policy, one call at a time, from the
	// client's apply goroutine; latest wins (see the package doc). A nil
	// error ACKs the revision and makes it the last good one (cached); an
	// error NACKs it with err.Error() and the last good one stays. The
	// revision is shared and must not be modified. Apply should return
	// promptly: a slow Apply never blocks the stream, but Run waits for it
	// before returning. Required.
	Apply func(*wsfleetv1.PolicyRevision) error
	// CacheFile, if set, holds the last good revision as protojson (see the
	// package doc). Its directory must exist.
	CacheFile string
	// MinBackoff and MaxBackoff bound the sleep between watch attempts.
	// Defaults DefaultMinBackoff and DefaultMaxBackoff; negative is an
	// error, and so is MinBackoff > MaxBackoff.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// Log receives one line per connect, disconnect, applied and refused
	// revision; retries go to debug. Default: logrus's standard logger.
	Log logrus.FieldLogger
}

// setDefaults fills the zero fields that have a default.
func (c *Config) setDefaults() {
	if c.Pool == "" {
		c.Pool = policy.DefaultPool
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.MinBackoff)
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
}

// validate checks a Config whose defaults are filled.
func (c *Config) validate() error {
	switch {
	case c.Conn == nil:
		return fmt.Errorf("%w: Conn is required", ErrConfig)
	case c.NodeID == "":
		return fmt.Errorf("%w: NodeID is required", ErrConfig)
	case c.Apply == nil:
		return fmt.Errorf("%w: Apply is required", ErrConfig)
	case c.MinBackoff < 0:
		return fmt.Errorf("%w: MinBackoff %s is negative", ErrConfig, c.MinBackoff)
	case c.MaxBackoff < 0:
		return fmt.Errorf("%w: MaxBackoff %s is negative", ErrConfig, c.MaxBackoff)
	case c.MinBackoff > c.MaxBackoff:
		return fmt.Errorf("%w: MinBackoff %s is greater than MaxBackoff %s", ErrConfig, c.MinBackoff, c.MaxBackoff)
	}
	if err := policy.ValidatePoolName(c.Pool); err != nil {
		return fmt.Errorf("%w: Pool: %w", ErrConfig, err)
	}
	if c.CacheFile != "" {
		// A missing directory is a deployment mistake best reported at
		// start, not as a warning after every applied revision.
		dir := filepath.Dir(c.CacheFile)
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("%w: CacheFile directory: %w", ErrConfig, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%w: CacheFile directory %s is not a directory", ErrConfig, dir)
		}
	}
	return nil
}
