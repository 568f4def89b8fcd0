package wsclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/wsfleet/wsfleet/sdk/wsclient"
)

// A service keeps a subscription to a node's channel and publishes on it;
// the client reconnects on its own and says why a connection failed.
// (Compiled, not run: it needs a node at the URL.)
func Example() {
	c, err := wsclient.New(wsclient.Config{
		URL:    "ws://127.0.0.1:8080/ws",
		Origin: "https://app.example.com",
		OnEvent: func(ev wsclient.Event) {
			if f := ev.Failure; f != nil {
				// f.Message is for a user, f.WhatToDo for whoever runs the
				// service, f.TraceID for `wsctl trace`.
				log.Printf("%s: %s (%s; trace %s; retry in %s)", ev.State, f.Message, f.WhatToDo, f.TraceID, ev.Delay)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = c.Subscribe(ctx, "room:42", func(ch string, data json.RawMessage) {
		fmt.Printf("%s: %s\n", ch, data)
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Publish(ctx, "room:42", json.RawMessage(`{"text":"hello"}`)); err != nil {
		log.Print(err)
	}
	select {
	case <-c.Done():
		// Stopped for good: the node refuses this client (origin, credentials).
		log.Print(c.Failure())
	case <-ctx.Done():
	}
}
