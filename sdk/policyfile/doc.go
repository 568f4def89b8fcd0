// Package policyfile reads and writes policy files: YAML or JSON documents
// that map 1:1 onto the wsfleet.v1.Policy message, with durations written the
// way people write them ("10s", "1m30s", "500ms").
//
// A file holds either a bare Policy or a whole PolicyRevision document (what
// `wsctl policy get -o yaml|json` prints). A file need not be complete: a
// field it leaves out takes its documented default (api/policy.Default), so
// `origins: {allow: [...]}` alone is a whole policy; a field it gives, even as
// an empty list, false or 0, keeps that value. Encode always writes every
// field of a policy, and Decode reads back an equal message, so a printed
// revision can be edited and applied again.
//
// The package has no state and no goroutines; every function is safe for
// concurrent use.
package policyfile
