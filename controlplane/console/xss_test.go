package console

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// Everything the pages show comes from outside: origins, NACK texts,
// proposal messages, node labels, client report details. The pages build
// their DOM with dom.js's h (text nodes, setAttribute of names written in
// the code); none of the sinks below that turn a string into markup or
// code may appear in them (the vendored chart library excepted).
func TestThePagesUseNoHTMLOrCodeSinks(t *testing.T) {
	sinks := regexp.MustCompile(`\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\s*\(|new\s+Function\s*\(|setTimeout\s*\(\s*['"\x60]|setInterval\s*\(\s*['"\x60]|createContextualFragment|\.srcdoc\b|DOMParser|javascript:`)
	attrs := regexp.MustCompile(`\{[^{}]*\b(href|src|action|formaction|srcdoc|style)\s*:\s*(\S)`)
	// An in-page link written in the code ('#rollout') is no data.
	constantFragment := regexp.MustCompile(`\bhref\s*:\s*'#[a-z0-9-]*'`)
	err := fs.WalkDir(webFS, "web", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path, "web/vendor/") {
			return err
		}
		if !strings.HasSuffix(path, ".js") && !strings.HasSuffix(path, ".html") {
			return nil
		}
		b, err := fs.ReadFile(webFS, path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			if m := sinks.FindString(line); m != "" {
				t.Errorf("%s:%d uses %q: build elements with h() and text nodes instead", path, i+1, m)
			}
			if strings.HasSuffix(path, ".js") {
				if m := attrs.FindStringSubmatch(constantFragment.ReplaceAllString(line, "")); m != nil {
					t.Errorf("%s:%d sets a %q attribute with h(): a URL or style from data can run script", path, i+1, m[1])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
