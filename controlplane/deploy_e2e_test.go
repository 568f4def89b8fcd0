package controlplane

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// metricName finds the wsfleet metric names a PromQL expression uses.
var metricName = regexp.MustCompile(`\bwsfleet_[a-z_]*[a-z]\b`)

// TestDeployFilesNameOnlyMetricsTheBinariesServe starts a control plane and
// a node and checks that every metric the shipped alert rules
// (deploy/alerts.yaml) and Grafana dashboard (deploy/grafana-dashboard.json)
// query is one a real process serves: a renamed metric must not leave an
// alert that can never fire or a panel that is always empty. (promtool,
// run by make test, checks the rules' syntax and their test cases.)
func TestDeployFilesNameOnlyMetricsTheBinariesServe(t *testing.T) {
	cp := startControl(t, t.TempDir(), "--dev")
	node := startNodeProc(t, "--control", cp.addr, "--node-id", "deploy-1", "--cache-file", filepath.Join(t.TempDir(), "c.json"))
	waitFor(t, 5*time.Second, "registered", func() bool { return nodesList(t, cp.addr)["deploy-1"].Connected })

	served := map[string]bool{}
	for _, addr := range []string{cp.httpAddr(t), node.metrics} {
		for name := range scrapeNames(t, addr) {
			served[name] = true
		}
	}

	used := map[string][]string{} // metric -> where
	rules, err := os.ReadFile(filepath.Join("deploy", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metricName.FindAllString(string(rules), -1) {
		used[m] = append(used[m], "alerts.yaml")
	}
	raw, err := os.ReadFile(filepath.Join("deploy", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if len(dash.Panels) == 0 {
		t.Fatal("grafana-dashboard.json has no panels")
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			for _, m := range metricName.FindAllString(tg.Expr, -1) {
				used[m] = append(used[m], fmt.Sprintf("panel %q", p.Title))
			}
		}
	}
	if len(used) == 0 {
		t.Fatal("no wsfleet metric named in the deploy files")
	}
	var missing []string
	for m, where := range used {
		if !served[m] {
			missing = append(missing, fmt.Sprintf("%s (%s)", m, strings.Join(where, ", ")))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics no process serves:\n%s", strings.Join(missing, "\n"))
	}
}

// httpAddr is the control plane's metrics address, from its listening line.
func (p *controlProc) httpAddr(t *testing.T) string {
	t.Helper()
	for _, line := range strings.Split(p.logText(), "\n") {
		var f map[string]any
		if json.Unmarshal([]byte(line), &f) == nil && f["msg"] == "control plane listening" {
			return fmt.Sprint(f["http_addr"])
		}
	}
	t.Fatal("no listening line in the control plane's log")
	return ""
}

// scrapeNames returns the metric names /metrics at addr serves, a
// histogram's _bucket, _sum and _count included.
func scrapeNames(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		names[name] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}
