package auth

import (
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The README's security model lists what a viewer may call; it must be
// exactly what methodRoles grants, so that a method added for viewers (or
// taken away) cannot leave the operators' documentation behind.
func TestTheREADMEListsEveryMethodAViewerMayCall(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var row string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `viewer` | token |") {
			row = line
			break
		}
	}
	if row == "" {
		t.Fatal("README has no security-model row for the viewer role")
	}
	var documented []string
	for _, m := range regexp.MustCompile("`([A-Z][A-Za-z]+)`").FindAllStringSubmatch(row, -1) {
		documented = append(documented, m[1])
	}
	var granted []string
	for method, roles := range methodRoles {
		if slices.Contains(roles, RoleViewer) {
			granted = append(granted, path.Base(method))
		}
	}
	slices.Sort(documented)
	slices.Sort(granted)
	if !slices.Equal(documented, granted) {
		t.Errorf("README's viewer row names %v;\nmethodRoles grants viewers %v", documented, granted)
	}
}
