// Package policysource gives the node its policy. In standalone mode (the
// node's --policy-file flag) that is File: a local YAML or JSON file in the
// format `wsctl policy get -o yaml|json` prints (a whole PolicyRevision
// document) or a bare Policy, re-read when it changes and on request (the
// node's binary forwards SIGHUP; the package owns no signals).
//
// A file that fails to decode or validate, or that the node refuses, never
// replaces the running policy: it is logged once per distinct content (one
// line at error level naming every violation, with field policy_file) and
// the node keeps serving with what it had. At start-up there is nothing to
// keep, so NewFile returns the error and the node refuses to start.
//
// # Change detection
//
// Every PollInterval the file is stat'ed through its path (following
// symlinks). When its size, modification time or inode changed, it is read
// and hashed, and only a content hash that differs from the running (or the
// last refused) content counts as a change. That covers editors that
// rewrite in place, editors and tools that write a temporary file and
// rename it over the old one, and Kubernetes ConfigMap volumes, which swap
// a `..data` symlink to a new directory. A file modified within the last
// two seconds is re-read on the next poll even when its stat looks
// unchanged, because a second write in the same timestamp tick with the
// same size would otherwise go unseen.
//
// # Concurrency
//
// Run and Watch poll on the caller's goroutine until their context is done;
// Watch also serves reload requests there. Reload may be called from any
// goroutine; polls and reloads are serialised, so Apply is never called
// concurrently with itself. Apply runs
// with that serialisation held: it must not call Reload, and it should
// return promptly, since a slow Apply delays the next poll. Current may be
// called from any goroutine and never blocks.
//
// The *PolicyRevision values handed to Apply and returned by Current are
// shared and must not be modified.
package policysource
