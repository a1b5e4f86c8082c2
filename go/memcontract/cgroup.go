package memcontract

// Cgroup resolution, the Go twin of Python's memcontract/_cgroup.py: which
// memory limit applies to this process (cgroup v1, v2 or hybrid), and the
// working set of the cgroup whose limit binds.
//
// Everything is a function of a filesystem root ("/" in production, a
// fixture tree in tests). resolveCgroup runs once, when a probe is built: it
// parses /proc/self/cgroup and /proc/self/mountinfo and fixes the list of
// directories to read. readLimit and readWorkingSet run on samples and only
// read the few small files named there.
//
// github.com/KimMachineGun/automemlimit's memlimit package resolves the same
// limit, but reads fixed paths (no root, so no fixture trees), returns no
// binding directory (whose usage is what the limit constrains) and no
// working set; so the Python probe's rules are ported here instead.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// pageCounterMax is v1's "no limit": the page counter's maximum rounded down
// to a page. Anything this large is no limit.
const pageCounterMax = 0x7FFFFFFFFFFFF000

type cgroupMount struct {
	root, point, fstype string
	options             map[string]bool
}

// cgroupPaths is where this process's memory cgroup lives, resolved once.
type cgroupPaths struct {
	version    int    // 1 (v1 memory controller) or 2 (unified)
	cgroupPath string // as /proc/self/cgroup names it
	directory  string // the own cgroup's directory, joined with the root
	// limitDirs: v2, the own directory and its parents up to the mount point
	// that have a memory.max (own first); v1, the own directory.
	limitDirs []string
}

// cgroupLimit is a limit read now: the smallest found (when found), the
// directory whose limit it is, and the files that failed (skipped).
type cgroupLimit struct {
	found     bool
	bytes     uint64
	directory string
	errs      []string
}

func parseProcCgroup(text string) (v1Memory, unified string, err error) {
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3) // the path itself may hold ':'
		if len(parts) != 3 || !isDigits(parts[0]) || !strings.HasPrefix(parts[2], "/") {
			return "", "", fmt.Errorf("unexpected /proc/self/cgroup line: %q", line)
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			unified = parts[2]
		case contains(strings.Split(parts[1], ","), "memory"):
			v1Memory = parts[2]
		}
	}
	return v1Memory, unified, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

var octalEscape = regexp.MustCompile(`\\[0-7]{3}`)

// unescapeMount undoes mountinfo's \040-style escapes.
func unescapeMount(s string) string {
	return octalEscape.ReplaceAllStringFunc(s, func(m string) string {
		n, _ := strconv.ParseUint(m[1:], 8, 8)
		return string(rune(n))
	})
}

func parseMountinfo(text string) ([]cgroupMount, error) {
	var mounts []cgroupMount
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		sep := indexOf(fields, "-")
		if !strings.Contains(line, "cgroup") || sep < 0 {
			continue
		}
		if sep < 6 || len(fields) < sep+4 {
			return nil, fmt.Errorf("unexpected mountinfo line: %q", line)
		}
		fstype := fields[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		opts := map[string]bool{}
		for _, o := range strings.Split(fields[sep+3], ",") {
			opts[o] = true
		}
		mounts = append(mounts, cgroupMount{unescapeMount(fields[3]), unescapeMount(fields[4]), fstype, opts})
	}
	return mounts, nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// hostDirectory maps a /proc/self/cgroup path to a directory under the
// mount point; a path outside the mount's root maps to the mount point.
func hostDirectory(m cgroupMount, cgroupPath string) string {
	root := strings.TrimRight(m.root, "/")
	path := strings.TrimRight(cgroupPath, "/")
	var rel string
	switch {
	case path == root:
	case strings.HasPrefix(path, root+"/"):
		rel = path[len(root):]
	default:
		return m.point
	}
	if rel == "" {
		return m.point
	}
	return strings.TrimRight(m.point, "/") + rel
}

// parseCgroupLimit parses memory.max or memory.limit_in_bytes: bytes, 0 for
// no limit ("max", -1, the page-counter sentinel).
func parseCgroupLimit(text string) (uint64, bool, error) {
	v := strings.TrimSpace(text)
	if v == "max" || v == "-1" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		if strings.HasPrefix(v, "-") {
			return 0, false, fmt.Errorf("negative memory limit: %s", v)
		}
		if errors.Is(err, strconv.ErrRange) {
			return 0, false, nil // beyond uint64: beyond the sentinel
		}
		return 0, false, fmt.Errorf("invalid limit %q", v)
	}
	if n >= pageCounterMax {
		return 0, false, nil
	}
	return n, true, nil
}

func parseMemoryStat(text string) (map[string]uint64, error) {
	stat := map[string]uint64{}
	for _, line := range strings.Split(text, "\n") {
		key, value, _ := strings.Cut(line, " ")
		if key == "" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("memory.stat %s: %q is not a count", key, value)
		}
		stat[key] = n
	}
	return stat, nil
}

func readText(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

func joinRoot(root, path string) string {
	return filepath.Join(root, strings.TrimLeft(path, "/"))
}

// pickMount prefers the mount whose root holds the path (the longest).
func pickMount(mounts []cgroupMount, cgroupPath string) (cgroupMount, bool) {
	var best cgroupMount
	found := false
	for _, m := range mounts {
		root := strings.TrimRight(m.root, "/")
		if (cgroupPath == root || strings.HasPrefix(cgroupPath, root+"/")) && (!found || len(m.root) > len(best.root)) {
			best, found = m, true
		}
	}
	if !found && len(mounts) > 0 {
		return mounts[0], true
	}
	return best, found
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func ownDirectory(root string, m cgroupMount, cgroupPath string) string {
	dir := joinRoot(root, hostDirectory(m, cgroupPath))
	if isDir(dir) {
		return dir
	}
	// A path that maps outside what is visible: the mount point is the
	// nearest cgroup we can see.
	return joinRoot(root, m.point)
}

// v2LimitDirs walks up to the mount point keeping directories that have a
// memory.max (the root cgroup has none).
func v2LimitDirs(root string, m cgroupMount, dir string) []string {
	top := filepath.Clean(joinRoot(root, m.point))
	var found []string
	for cur := filepath.Clean(dir); ; cur = filepath.Dir(cur) {
		if isFile(filepath.Join(cur, "memory.max")) {
			found = append(found, cur)
		}
		if cur == top || len(cur) <= len(top) {
			return found
		}
	}
}

// resolveCgroup finds this process's memory cgroup under root; nil, nil
// when there is none to see. The v1 memory controller wins when mounted
// (hybrid hosts account memory there), else the unified hierarchy.
func resolveCgroup(root string) (*cgroupPaths, error) {
	procCgroup, err := readText(joinRoot(root, "proc/self/cgroup"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v1Path, v2Path, err := parseProcCgroup(procCgroup)
	if err != nil {
		return nil, err
	}
	mi, err := readText(joinRoot(root, "proc/self/mountinfo"))
	if err != nil {
		return nil, err
	}
	mounts, err := parseMountinfo(mi)
	if err != nil {
		return nil, err
	}
	var v1Mounts, v2Mounts []cgroupMount
	for _, m := range mounts {
		switch {
		case m.fstype == "cgroup" && m.options["memory"]:
			v1Mounts = append(v1Mounts, m)
		case m.fstype == "cgroup2":
			v2Mounts = append(v2Mounts, m)
		}
	}
	if v1Path != "" {
		if m, ok := pickMount(v1Mounts, v1Path); ok {
			dir := ownDirectory(root, m, v1Path)
			return &cgroupPaths{version: 1, cgroupPath: v1Path, directory: dir, limitDirs: []string{dir}}, nil
		}
	}
	if v2Path != "" {
		if m, ok := pickMount(v2Mounts, v2Path); ok {
			dir := ownDirectory(root, m, v2Path)
			return &cgroupPaths{version: 2, cgroupPath: v2Path, directory: dir, limitDirs: v2LimitDirs(root, m, dir)}, nil
		}
	}
	return nil, nil
}

// readLimit reads the limit now and never fails: a file that fails is
// skipped (named in errs). v2: the smallest memory.max from the own cgroup
// up; v1: the smaller of memory.limit_in_bytes and hierarchical_memory_limit.
func (p *cgroupPaths) readLimit() cgroupLimit {
	var out cgroupLimit
	consider := func(n uint64, ok bool, dir string) {
		if ok && (!out.found || n < out.bytes) {
			out.found, out.bytes, out.directory = true, n, dir
		}
	}
	if p.version == 1 {
		text, err := readText(filepath.Join(p.directory, "memory.limit_in_bytes"))
		if err == nil {
			var n uint64
			var ok bool
			n, ok, err = parseCgroupLimit(text)
			consider(n, ok, p.directory)
		}
		if err != nil {
			out.errs = append(out.errs, fmt.Sprintf("%s/memory.limit_in_bytes: %v", p.directory, err))
		}
		text, err = readText(filepath.Join(p.directory, "memory.stat"))
		var stat map[string]uint64
		if err == nil {
			stat, err = parseMemoryStat(text)
		}
		if err != nil {
			out.errs = append(out.errs, fmt.Sprintf("%s/memory.stat: %v", p.directory, err))
		} else if h, ok := stat["hierarchical_memory_limit"]; ok {
			// Absent when the kernel does not account hierarchically.
			n, ok, _ := parseCgroupLimit(strconv.FormatUint(h, 10))
			consider(n, ok, p.directory)
		}
		return out
	}
	for _, dir := range p.limitDirs {
		text, err := readText(filepath.Join(dir, "memory.max"))
		var n uint64
		var ok bool
		if err == nil {
			n, ok, err = parseCgroupLimit(text)
		}
		if err != nil {
			out.errs = append(out.errs, fmt.Sprintf("%s/memory.max: %v", dir, err))
			continue
		}
		consider(n, ok, dir)
	}
	return out
}

// readWorkingSet returns a cgroup's working set now, as kubelet counts it
// (what the OOM killer weighs): usage minus inactive file cache, floored at 0.
func readWorkingSet(version int, dir string) (uint64, error) {
	usageFile, inactiveKey := "memory.current", "inactive_file"
	if version == 1 {
		usageFile, inactiveKey = "memory.usage_in_bytes", "total_inactive_file"
	}
	text, err := readText(filepath.Join(dir, usageFile))
	if err != nil {
		return 0, err
	}
	usage, err := strconv.ParseUint(strings.TrimSpace(text), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s/%s: %w", dir, usageFile, err)
	}
	text, err = readText(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return 0, err
	}
	stat, err := parseMemoryStat(text)
	if err != nil {
		return 0, err
	}
	inactive, ok := stat[inactiveKey]
	if !ok {
		return 0, fmt.Errorf("%s/memory.stat has no %s", dir, inactiveKey)
	}
	if inactive > usage {
		return 0, nil
	}
	return usage - inactive, nil
}
