package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// uplotFixture is the npm fixture that pins the vendored uPlot:
// package.json and package-lock.json, installed by scripts/deps.
const uplotFixture = "testdata/uplot"

// vendored maps each shipped uPlot file, under static/, to its copy in
// the npm package.
var vendored = map[string]string{
	"vendor/uplot/uPlot.esm.js":  "dist/uPlot.esm.js",
	"vendor/uplot/uPlot.min.css": "dist/uPlot.min.css",
	"vendor/uplot/LICENSE":       "LICENSE",
}

// TestVendoredUPlotIsThePinnedRelease checks that the uPlot files the
// console ships are byte for byte those of the release package-lock.json
// pins, and that the package.json pin and the lock agree.
func TestVendoredUPlotIsThePinnedRelease(t *testing.T) {
	t.Parallel()
	want := lockedVersion(t)
	var pin struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	readJSON(t, filepath.Join(uplotFixture, "package.json"), &pin)
	if pin.Dependencies["uplot"] != want {
		t.Fatalf("package.json pins uplot %q, package-lock.json %q: pin an exact version and run npm install in %s", pin.Dependencies["uplot"], want, uplotFixture)
	}
	needUPlotPackage(t, want)
	for shipped, src := range vendored {
		got, err := files.ReadFile("static/" + shipped)
		if err != nil {
			t.Fatalf("the console does not ship %s: %v", shipped, err)
		}
		orig, err := os.ReadFile(filepath.Join(uplotFixture, "node_modules", "uplot", src))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, orig) {
			t.Errorf("static/%s differs from uplot %s's %s; fix: cp %s/node_modules/uplot/%s static/%s", shipped, want, src, uplotFixture, src, shipped)
		}
	}
	// The ESM build names its version in its banner: a second check that
	// no other release was copied in.
	esm, _ := files.ReadFile("static/vendor/uplot/uPlot.esm.js")
	if !bytes.Contains(esm, []byte("(v"+want+")")) {
		t.Errorf("static/vendor/uplot/uPlot.esm.js does not say it is v%s", want)
	}
}

// lockedVersion is the uplot version package-lock.json pins.
func lockedVersion(t *testing.T) string {
	t.Helper()
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	readJSON(t, filepath.Join(uplotFixture, "package-lock.json"), &lock)
	v := lock.Packages["node_modules/uplot"].Version
	if v == "" {
		t.Fatalf("%s/package-lock.json does not lock uplot", uplotFixture)
	}
	return v
}

// needUPlotPackage skips the test when the locked uplot is not installed
// (naming scripts/deps), and fails it in CI, where it must be.
func needUPlotPackage(t *testing.T, want string) {
	t.Helper()
	err := checkUPlotPackage(want)
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("cannot compare the vendored uPlot: %v", err)
	}
	t.Skipf("cannot compare the vendored uPlot: %v", err)
}

func checkUPlotPackage(want string) error {
	const fix = "fix: scripts/deps (or cd internal/console/ui/testdata/uplot && npm ci)"
	b, err := os.ReadFile(filepath.Join(uplotFixture, "node_modules", "uplot", "package.json"))
	if err != nil {
		return fmt.Errorf("uplot is not installed in internal/console/ui/%s; %s", uplotFixture, fix)
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil || pkg.Version != want {
		return fmt.Errorf("%s/node_modules has uplot %q, package-lock.json pins %s; %s", uplotFixture, pkg.Version, want, fix)
	}
	return nil
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
