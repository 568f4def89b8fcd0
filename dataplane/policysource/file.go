package policysource

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/wsfleet/wsfleet/api/policy"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/sdk/policyfile"
)

// DefaultPollInterval is FileConfig.PollInterval when left zero.
const DefaultPollInterval = time.Second

// MaxFileBytes bounds what is read from a policy file. A valid policy is far
// smaller (at most 1000 origins of at most 512 characters); a bigger file is
// a mistake (the wrong path) and is refused before it is parsed.
const MaxFileBytes = 4 << 20

// FileAuthor is the author of every revision loaded from a file.
const FileAuthor = "file"

// racyWindow: a file modified this recently is re-read on the next poll even
// when its stat looks unchanged. File systems keep modification times in
// ticks (a few milliseconds on Linux, two seconds on FAT), and a rewrite of
// the same size within the tick of the last read would otherwise be missed.
const racyWindow = 2 * time.Second

// FileConfig configures File.
type FileConfig struct {
	// Path of the policy file (required). Symlinks are followed on every
	// read, so a ConfigMap mount's path works.
	Path string
	// Pool is the node's pool, used when the document names none (a bare
	// policy). Default policy.DefaultPool; must be a valid pool name.
	Pool string
	// PollInterval is how often the file is checked for changes. Default
	// DefaultPollInterval; negative is an error.
	PollInterval time.Duration
	// Log receives one line per applied or refused file. Default: logrus's
	// standard logger.
	Log logrus.FieldLogger
	// Apply is called with every new valid revision, from Run's goroutine,
	// Reload's caller, or NewFile for the first one; never concurrently.
	// An error means the node refused it: the error is logged, the running
	// policy stays, and the same content is not offered again until the
	// file changes. Nil: nothing is called and Current is the only output.
	Apply func(*wsfleetv1.PolicyRevision) error
}

// File is a policy source backed by a local file. Create it with NewFile.
type File struct {
	cfg FileConfig
	log logrus.FieldLogger

	current atomic.Pointer[wsfleetv1.PolicyRevision]

	mu sync.Mutex // serialises checks (Run, Reload); guards the fields below
	// stamp of the file as last read, and whether it can be trusted to say
	// "unchanged" (false right after a read of a recently modified file).
	stamp   stamp
	trusted bool
	// running is the content hash of the current revision.
	running [sha256.Size]byte
	// refusedHash/refused: the last content that was not applied and why;
	// the same content is neither retried nor logged again.
	refusedHash [sha256.Size]byte
	refused     error
	// readErr is the text of the last logged read failure, so a missing
	// file is logged once, not once per poll.
	readErr string
}

type stamp struct {
	size     int64
	mtime    time.Time
	dev, ino uint64
}

func stampOf(fi os.FileInfo) stamp {
	dev, ino := fileID(fi)
	return stamp{size: fi.Size(), mtime: fi.ModTime(), dev: dev, ino: ino}
}

func (s stamp) equal(o stamp) bool {
	return s.size == o.size && s.mtime.Equal(o.mtime) && s.dev == o.dev && s.ino == o.ino
}

// NewFile reads, decodes and validates the file once and calls Apply with
// the first revision. An unreadable or invalid file is an error naming every
// problem (wrapping ErrRead, ErrInvalid or ErrRefused); the node refuses to
// start on it. NewFile logs nothing for it: the caller reports its error.
func NewFile(cfg FileConfig) (*File, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("%w: Path is required", ErrConfig)
	}
	if cfg.PollInterval < 0 {
		return nil, fmt.Errorf("%w: PollInterval %s is negative", ErrConfig, cfg.PollInterval)
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Pool == "" {
		cfg.Pool = policy.DefaultPool
	}
	if err := policy.ValidatePoolName(cfg.Pool); err != nil {
		return nil, fmt.Errorf("%w: Pool: %w", ErrConfig, err)
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	f := &File{cfg: cfg, log: cfg.Log.WithField("policy_file", cfg.Path)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.check(true); err != nil {
		return nil, err
	}
	return f, nil
}

// Current returns the running revision. It never blocks.
func (f *File) Current() *wsfleetv1.PolicyRevision {
	return f.current.Load()
}

// Reload re-reads the file now, even when its stat looks unchanged (Watch
// calls it for each reload request). It returns nil when the content is
// the running policy's or was applied; otherwise an error naming every
// problem, and the running policy stays. A refusal is logged here as in
// Run (once per distinct content), so the caller need not log it again.
func (f *File) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	fresh, err := f.check(true)
	if fresh {
		f.logRefusal(err)
	}
	return err
}

// Run checks the file every PollInterval until ctx is done.
func (f *File) Run(ctx context.Context) { f.watch(ctx, nil) }

// Watch is Run for a caller that builds what applies the policy from the
// first revision (Current), and so could not give it to NewFile as
// FileConfig.Apply: from the call on, every new valid revision goes to
// apply. A receive on reload re-reads the file at once, as Reload does (a
// binary sends one on SIGHUP; the library owns no signals); a nil reload
// never fires. Watch returns when ctx is done.
func (f *File) Watch(ctx context.Context, apply func(*wsfleetv1.PolicyRevision) error, reload <-chan struct{}) {
	f.mu.Lock()
	f.cfg.Apply = apply
	f.mu.Unlock()
	f.watch(ctx, reload)
}

func (f *File) watch(ctx context.Context, reload <-chan struct{}) {
	t := time.NewTicker(f.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.poll()
		case <-reload:
			// A refusal is logged by Reload, once per content.
			_ = f.Reload()
		}
	}
}

// poll is one tick of Run.
func (f *File) poll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fresh, err := f.check(false); fresh {
		f.logRefusal(err)
	}
}

func (f *File) logRefusal(err error) {
	entry := f.log.WithError(err)
	if cur := f.current.Load(); cur != nil {
		entry = entry.WithField("running_revision", cur.GetRevision())
	}
	if errors.Is(err, ErrRead) {
		entry.Error("policy file unreadable; keeping the running policy")
		return
	}
	entry.Error("policy file refused; keeping the running policy")
}

// check reads the file when force is set or its stat changed, and applies
// new valid content. It returns why the file on disk is not running (nil
// when it is) and whether that is news worth a log line (fresh). f.mu must
// be held.
func (f *File) check(force bool) (fresh bool, err error) {
	if !force && f.trusted {
		if fi, serr := os.Stat(f.cfg.Path); serr == nil && stampOf(fi).equal(f.stamp) {
			return false, nil
		}
		// A stat error is reported by the read below, with the same text
		// as Reload would give.
	}
	data, st, err := readFile(f.cfg.Path)
	if err != nil {
		// Whatever reappears at the path must be read again.
		f.trusted = false
		fileErr := &fileError{kind: ErrRead, path: f.cfg.Path, problems: []string{err.Error()}, cause: err}
		fresh := fileErr.Error() != f.readErr
		f.readErr = fileErr.Error()
		return fresh, fileErr
	}
	f.readErr = ""
	f.stamp = st
	f.trusted = time.Since(st.mtime) >= racyWindow

	sum := sha256.Sum256(data)
	switch {
	case f.current.Load() != nil && sum == f.running:
		return false, nil
	case f.refused != nil && sum == f.refusedHash:
		return false, f.refused
	}

	rev, err := f.revision(data, st)
	if err == nil && f.cfg.Apply != nil {
		if aerr := f.cfg.Apply(rev); aerr != nil {
			err = &fileError{kind: ErrRefused, path: f.cfg.Path, problems: []string{aerr.Error()}, cause: aerr}
		}
	}
	if err != nil {
		f.refusedHash, f.refused = sum, err
		return true, err
	}
	f.running, f.refused = sum, nil
	f.current.Store(rev)
	f.log.WithFields(logrus.Fields{"pool": rev.GetPool(), "revision": rev.GetRevision()}).Info("policy file applied")
	return false, nil
}

// readFile reads the file behind path (following symlinks) and the stamp
// of what it read: stat'ing the open file, not the path, keeps the two
// consistent when the path is swapped in between.
func readFile(path string) ([]byte, stamp, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, stamp{}, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, stamp{}, err
	}
	if !fi.Mode().IsRegular() {
		return nil, stamp{}, fmt.Errorf("%s is not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileBytes+1))
	if err != nil {
		return nil, stamp{}, err
	}
	if len(data) > MaxFileBytes {
		return nil, stamp{}, fmt.Errorf("larger than %d bytes", MaxFileBytes)
	}
	return data, stampOf(fi), nil
}

// revision decodes and validates data into the revision the node runs.
func (f *File) revision(data []byte, st stamp) (*wsfleetv1.PolicyRevision, error) {
	doc, err := policyfile.Decode(data)
	if err != nil {
		return nil, &fileError{kind: ErrInvalid, path: f.cfg.Path, problems: decodeProblems(err), cause: err}
	}
	var problems []string
	pool := f.cfg.Pool
	if doc.Pool != "" {
		pool = doc.Pool
		if err := policy.ValidatePoolName(pool); err != nil {
			problems = append(problems, "pool: "+err.Error())
		}
	}
	for _, v := range policy.Validate(doc.Policy) {
		problems = append(problems, v.GetField()+": "+v.GetDescription())
	}
	if len(problems) > 0 {
		return nil, &fileError{kind: ErrInvalid, path: f.cfg.Path, problems: problems, cause: policy.ErrInvalidPolicy}
	}

	n := doc.Revision
	if n <= 0 {
		// A bare policy (or a document without a revision) counts locally,
		// on from whatever runs, so revisions never go back for it.
		n = f.current.Load().GetRevision() + 1
	}
	return &wsfleetv1.PolicyRevision{
		Pool:       pool,
		Revision:   n,
		Author:     FileAuthor,
		CreateTime: timestamppb.New(st.mtime),
		Message:    "loaded from " + f.cfg.Path,
		Policy:     doc.Policy,
	}, nil
}

// decodeProblems lists what policyfile.Decode found, one entry per
// problem, without repeating its package prefix on each.
func decodeProblems(err error) []string {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		var fe *policyfile.FieldError
		switch {
		case errors.As(e, &fe) && fe.Path != "":
			out = append(out, fe.Path+": "+fe.Detail)
		case errors.As(e, &fe):
			out = append(out, fe.Detail)
		default:
			out = append(out, e.Error())
		}
	}
	return out
}
