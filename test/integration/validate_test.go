package integration

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestValidateBrokenConfigs: `edgeward validate` rejects each broken
// config with exit status 2 and an error naming the file, the line and
// (where there is one) the field. It needs no privilege and no kernel.
func TestValidateBrokenConfigs(t *testing.T) {
	files, err := filepath.Glob("../../config/testdata/invalid/*.yaml")
	if err != nil || len(files) < 15 {
		t.Fatalf("want at least 15 broken configs, found %d (%v)", len(files), err)
	}

	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			out, err := exec.Command(edgewardBin, "validate", "-c", file).CombinedOutput()
			if code := exitCode(err); code != 2 {
				t.Fatalf("exit status %d, want 2; output:\n%s", code, out)
			}
			first := strings.SplitN(string(out), "\n", 2)[0]
			where := regexp.MustCompile("^" + regexp.QuoteMeta(file) + `(:\d+(:\d+)?)?: `)
			if !where.MatchString(first) {
				t.Errorf("error does not start with %s:LINE: %q", file, first)
			}
		})
	}
}

// TestValidateProductExample: the example of PRODUCT.md is valid.
func TestValidateProductExample(t *testing.T) {
	file := "../../config/testdata/valid/product.yaml"
	out, err := exec.Command(edgewardBin, "validate", "-c", file).CombinedOutput()
	if err != nil {
		t.Fatalf("validate %s: %v\n%s", file, err, out)
	}
	if !strings.Contains(string(out), "valid") {
		t.Errorf("unexpected output: %s", out)
	}
}
