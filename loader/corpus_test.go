package loader

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/edgeward/edgeward/test/demopolicy"
)

// corpusDir is where the ICS captures are: EDGEWARD_ICS_PCAPS, or the
// shared folder beside the repository.
func corpusDir() string {
	if dir := os.Getenv("EDGEWARD_ICS_PCAPS"); dir != "" {
		return dir
	}
	return filepath.Join("..", "..", "shared", "corpus", "ics-pcaps")
}

// linkNeeds are the reasons for which the demo policy may pass a frame of
// the OT captures: nothing in them is an approved destination.
var linkNeeds = map[string]bool{"arp": true, "ndp": true, "mld": true, "dhcp": true}

// TestICSCorpus runs every frame of the ICS captures through the egress
// program under the demo policy: each gets a verdict and a reason, and only
// what a link needs to work passes.
func TestICSCorpus(t *testing.T) {
	dir := corpusDir()
	files, err := filepath.Glob(filepath.Join(dir, "*.pcap*"))
	if err != nil || len(files) == 0 {
		if _, statErr := os.Stat(dir); errors.Is(statErr, os.ErrNotExist) {
			t.Skipf("no ICS captures at %s (set EDGEWARD_ICS_PCAPS to their folder)", dir)
		}
		t.Fatalf("no captures found in %s: %v", dir, err)
	}

	cfgDir := t.TempDir()
	_, cfg, err := demopolicy.Write(cfgDir, demopolicy.Params{BPFFS: "/unused", Dir: cfgDir, Cgroup: "/unused"})
	if err != nil {
		t.Fatal(err)
	}
	l := openTestLoader(t, cfg)

	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			frames := readFrames(t, file)
			before := readCounters(t, l)
			got := map[string]int{}
			for i, frame := range frames {
				ret := runEgress(t, l, false, frame)
				if ret != tcPass && ret != tcDrop {
					t.Fatalf("frame %d: program returned %#x", i+1, ret)
				}
				got[verdictOf(ret)]++
			}
			assertCorpusCounts(t, before, readCounters(t, l), len(frames), got)
		})
	}
}

func verdictOf(ret uint32) string {
	if ret == tcDrop {
		return "drop"
	}
	return "pass"
}

// assertCorpusCounts checks that the counters grew by one packet per frame,
// each under a named reason, and that passes are link needs only.
func assertCorpusCounts(t *testing.T, before, after map[cell]tally, frames int, verdicts map[string]int) {
	t.Helper()
	total := 0
	for k, a := range after {
		n := int(a.Packets - before[k].Packets)
		if n == 0 {
			continue
		}
		total += n
		if strings.HasPrefix(k.Reason, "unknown") || k.Reason == "" {
			t.Errorf("%d frames counted without a reason: %+v", n, k)
		}
		if k.Verdict == "pass" && !linkNeeds[k.Reason] {
			t.Errorf("%d frames passed for reason %q; only link needs may pass", n, k.Reason)
		}
		t.Logf("%-6s %-22s %d", k.Verdict, k.Reason, n)
	}
	if total != frames {
		t.Errorf("counters grew by %d packets for %d frames", total, frames)
	}
	if verdicts["pass"]+verdicts["drop"] != frames {
		t.Errorf("verdicts %v for %d frames", verdicts, frames)
	}
}

// readFrames returns the Ethernet frames of a pcap or pcapng file.
func readFrames(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	src, err := frameReader(f, strings.HasSuffix(path, ".pcapng"))
	if err != nil {
		src, err = retryOtherFormat(t, f, path)
	}
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if link := src.LinkType(); link != layers.LinkTypeEthernet {
		t.Fatalf("%s: link type %s, the test feeds Ethernet frames only", path, link)
	}

	var frames [][]byte
	for {
		data, _, err := src.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read %s after %d frames: %v", path, len(frames), err)
		}
		frames = append(frames, append([]byte(nil), data...))
	}
	if len(frames) == 0 {
		t.Fatalf("%s has no frames", path)
	}
	return frames
}

// retryOtherFormat reopens a capture whose name lies about its format (a
// pcapng file called .pcap, as hart_hart_ip.pcap is).
func retryOtherFormat(t *testing.T, f *os.File, path string) (packetSource, error) {
	t.Helper()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return frameReader(f, !strings.HasSuffix(path, ".pcapng"))
}

// packetSource is what pcapgo's pcap and pcapng readers both offer.
type packetSource interface {
	ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
	LinkType() layers.LinkType
}

// frameReader opens r as a pcapng (ng) or classic pcap capture.
func frameReader(r io.Reader, ng bool) (packetSource, error) {
	if ng {
		return pcapgo.NewNgReader(r, pcapgo.DefaultNgReaderOptions)
	}
	return pcapgo.NewReader(r)
}
