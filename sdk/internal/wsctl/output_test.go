package wsctl

import (
	"encoding/json"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/wsfleet/wsfleet/api/errclass"
	wsfleetv1 "github.com/wsfleet/wsfleet/api/wsfleet/v1"
)

// protoClasses turns wsctl's error classes in a JSON tree back into what
// protojson reads: the enum name instead of the short one, without the
// explanation wsctl adds next to it.
func protoClasses(v any) error {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && (k == "class" || k == "top_class") {
				c, err := errclass.Parse(s)
				if err != nil {
					return err
				}
				v[k] = c.String()
				delete(v, "signal")
				delete(v, "what_to_do")
				continue
			}
			if err := protoClasses(x); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range v {
			if err := protoClasses(x); err != nil {
				return err
			}
		}
	}
	return nil
}

// classSpellings lists every value of every "class" or "top_class" key of a
// JSON tree, and says whether each sits with its signal and what to do.
func classSpellings(t *testing.T, v any) (names []string) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == "class" || k == "top_class" {
				s, _ := x.(string)
				names = append(names, s)
				info := errclass.Lookup(mustParse(t, s))
				if v["signal"] != info.Signal || v["what_to_do"] != info.Action {
					t.Errorf("%s %q comes with signal %v and what_to_do %v, want %q and %q",
						k, s, v["signal"], v["what_to_do"], info.Signal, info.Action)
				}
				continue
			}
			names = append(names, classSpellings(t, x)...)
		}
	case []any:
		for _, x := range v {
			names = append(names, classSpellings(t, x)...)
		}
	}
	return names
}

func mustParse(t *testing.T, s string) wsfleetv1.ErrorClass {
	t.Helper()
	c, err := errclass.Parse(s)
	if err != nil {
		t.Fatalf("class %q: %v", s, err)
	}
	return c
}

func TestOutputSpellsClassesOneWayWithWhatToDo(t *testing.T) {
	fx := newFleetFixture(t)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"errors top -o json", []string{"errors", "top", "-o", "json"}},
		{"errors top --by origin -o json", []string{"errors", "top", "--by", "origin", "-o", "json"}},
		{"errors top -o yaml", []string{"errors", "top", "--all", "-o", "yaml"}},
		{"errors tail -o json", []string{"errors", "tail", "--since", "3h", "-o", "json"}},
		{"trace -o yaml", []string{"trace", "abc", "-o", "yaml"}},
	} {
		t.Run(tt.name+" writes short class names, each with signal and what to do", func(t *testing.T) {
			r := fx.run(tt.args...)
			r.want(t, 0)
			if strings.Contains(r.stdout, "ERROR_CLASS_") {
				t.Errorf("output spells a class as the proto enum:\n%s", r.stdout)
			}
			js := []byte(r.stdout)
			if tt.args[len(tt.args)-1] == "yaml" {
				var err error
				if js, err = yaml.YAMLToJSON(js); err != nil {
					t.Fatal(err)
				}
			}
			var tree any
			if err := json.Unmarshal(js, &tree); err != nil {
				t.Fatalf("%v\n%s", err, r.stdout)
			}
			names := classSpellings(t, tree)
			if len(names) == 0 {
				t.Fatalf("no class in\n%s", r.stdout)
			}
			for _, n := range names {
				if n != errclass.Name(mustParse(t, n)) {
					t.Errorf("class spelled %q, want the short name", n)
				}
			}
		})
	}
}

func TestErrorsTopJSON(t *testing.T) {
	fx := newFleetFixture(t)
	r := fx.run("errors", "top", "-o", "json")
	r.want(t, 0)
	want := `{
  "groups": [
    {
      "key": "origin_rejected",
      "count": 3,
      "top_class": "origin_rejected",
      "signal": "HTTP 403",
      "what_to_do": "fix the allowlist or the page's domain"
    },
    {
      "key": "heartbeat_timeout",
      "count": 1,
      "top_class": "heartbeat_timeout",
      "signal": "close 1006 seen by client",
      "what_to_do": "tune heartbeat.interval and heartbeat.timeout"
    }
  ],
  "total": 4
}
`
	assertEqual(t, "stdout", r.stdout, want)
}
