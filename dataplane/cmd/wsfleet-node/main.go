// Command wsfleet-node runs a wsfleet data-plane node: the WebSocket
// gateway product apps connect to.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"

	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
	"github.com/wsfleet/wsfleet/dataplane"
	"github.com/wsfleet/wsfleet/dataplane/policysource"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("wsfleet-node", flag.ContinueOnError)
	var cfg dataplane.Config
	fs.StringVar(&cfg.ListenAddr, "listen", dataplane.DefaultListenAddr, "WebSocket listen address (endpoint at /ws)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", dataplane.DefaultMetricsAddr, `address for /metrics, /healthz and /readyz ("-" to disable)`)
	fs.StringVar(&cfg.NodeID, "node-id", "", "node id (default: host name plus a short random suffix)")
	fs.StringVar(&cfg.Pool, "pool", "default", "the node's pool")
	policyFile := fs.String("policy-file", "", "policy file (YAML/JSON as `wsctl policy get -o yaml` prints); reloaded on change and on SIGHUP")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", dataplane.DefaultDrainTimeout, "how long shutdown may take to close every connection")
	fs.StringVar(&cfg.AuthURL, "auth-url", "", "optional connect-authorization endpoint called before each upgrade")
	fs.DurationVar(&cfg.AuthTimeout, "auth-timeout", 0, "timeout of one --auth-url call (default 2s)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "json", "log format: json or text")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "wsfleet-node: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	if *showVersion {
		fmt.Println(version)
		return 0
	}
	log, err := newLogger(*logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsfleet-node: %v\n", err)
		return 2
	}
	cfg.Log = log
	if cfg.NodeID == "" {
		cfg.NodeID = defaultNodeID()
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var node *dataplane.Node
	var source *policysource.File
	if *policyFile != "" {
		source, err = policysource.NewFile(policysource.FileConfig{
			Path: *policyFile,
			Pool: cfg.Pool,
			Log:  log,
			Apply: func(rev *wsfleetv1.PolicyRevision) error {
				if node == nil { // the initial load, before the node exists
					cfg.Policy = rev
					return nil
				}
				return node.Apply(rev)
			},
		})
		if err != nil {
			log.WithError(err).Error("cannot load the policy file")
			return 1
		}
	}
	node, err = dataplane.New(cfg)
	if err != nil {
		log.WithError(err).Error("cannot start")
		return 1
	}
	if err := node.Listen(); err != nil {
		log.WithError(err).Error("cannot listen")
		return 1
	}
	if source != nil {
		go source.Run(ctx)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-hup:
					// policysource logs a refused file itself, once per content.
					_ = source.Reload()
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	if err := node.Run(ctx); err != nil {
		log.WithError(err).Error("node stopped with an error")
		return 1
	}
	return 0
}

func newLogger(level, format string) (*logrus.Logger, error) {
	log := logrus.New()
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	log.SetLevel(lvl)
	switch format {
	case "json":
		log.SetFormatter(&logrus.JSONFormatter{})
	case "text":
		log.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	default:
		return nil, fmt.Errorf("--log-format must be json or text")
	}
	return log, nil
}

func defaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}
