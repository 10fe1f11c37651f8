// Command image-oci assembles the kfop container image offline, without a Docker engine or a
// registry: an empty base, one layer with the files the binary needs to run (its shared
// libraries and dynamic loader, CA certificates, /etc/passwd and /etc/group with a nonroot user,
// a writable /tmp) and one layer with the binary. It writes an OCI image layout as a tar archive
// (what `skopeo copy oci-archive:…` and `podman load` read).
//
// The output depends only on its inputs: file times are SOURCE_DATE_EPOCH (else 0), entries are
// sorted and owned by root, and gzip headers carry no name or time, so the same binary gives the
// same image digest and the same archive bytes.
//
// Usage:
//
//	image-oci --binary target/release/kfop --out kfop.oci.tar --tag ghcr.io/kfop/kfop:0.1.0 \
//	  --lib /lib/x86_64-linux-gnu/libc.so.6 --lib /lib64/ld-linux-x86-64.so.2 …
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	binaryPath = "/usr/local/bin/kfop"
	certsPath  = "/etc/ssl/certs/ca-certificates.crt"
	nonroot    = 65532
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	binary := flag.String("binary", "", "the kfop executable to put at "+binaryPath)
	out := flag.String("out", "", "where to write the image: an OCI image layout as a tar archive")
	tag := flag.String("tag", "", "the image reference, stored as the org.opencontainers.image.ref.name annotation (e.g. ghcr.io/kfop/kfop:0.1.0)")
	version := flag.String("version", "", "the org.opencontainers.image.version label (default: the tag's tag)")
	source := flag.String("source", "https://github.com/kfop/kfop", "the org.opencontainers.image.source label")
	licenses := flag.String("licenses", "Apache-2.0", "the org.opencontainers.image.licenses label")
	certs := flag.String("certs", certsPath, "the CA bundle to copy to "+certsPath+" (skipped when absent; empty to leave out)")
	var libs stringList
	flag.Var(&libs, "lib", "a shared library or the dynamic loader the binary needs, copied to the same path in the image (repeatable; as `ldd` resolves them)")
	flag.Parse()
	if *binary == "" || *out == "" || *tag == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: image-oci --binary PATH --out PATH --tag REF [--lib PATH]... [--version V] [--source URL] [--licenses SPDX] [--certs PATH]")
		os.Exit(2)
	}
	if *version == "" {
		*version = tagOf(*tag)
	}
	if err := run(*binary, *out, *tag, *version, *source, *licenses, *certs, libs); err != nil {
		fmt.Fprintf(os.Stderr, "image-oci: %v\n", err)
		os.Exit(1)
	}
}

// tagOf returns the tag of a reference like host/repo:tag, or "" when it has none.
func tagOf(ref string) string {
	name := ref
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[i+1:]
	}
	return ""
}

func run(binary, out, tag, version, source, licenses, certs string, libs []string) error {
	epoch, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	arch, interp, err := inspectELF(binary)
	if err != nil {
		return err
	}
	if interp != "" && !contains(libs, interp) {
		return fmt.Errorf("%s is dynamically linked (loader %s) but no --lib gives the loader; pass what `ldd %s` lists", binary, interp, binary)
	}

	base := newTree(epoch)
	base.dir("/tmp", 0o1777, 0, 0)
	base.dir("/home/nonroot", 0o755, nonroot, nonroot)
	base.file("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"))
	base.file("/etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n"))
	haveCerts := false
	if certs != "" {
		switch data, err := os.ReadFile(certs); {
		case err == nil:
			base.file(certsPath, 0o644, data)
			haveCerts = true
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(os.Stderr, "image-oci: no CA bundle at %s; the image has none\n", certs)
		default:
			return err
		}
	}
	for _, lib := range libs {
		if !filepath.IsAbs(lib) {
			return fmt.Errorf("--lib %s: not an absolute path", lib)
		}
		// The library's content (through symlinks) at the path the loader looks for it.
		data, err := os.ReadFile(lib)
		if err != nil {
			return fmt.Errorf("--lib: %w", err)
		}
		base.file(lib, 0o755, data)
	}
	app := newTree(epoch)
	data, err := os.ReadFile(binary)
	if err != nil {
		return err
	}
	app.file(binaryPath, 0o755, data)

	created := v1.Time{Time: epoch}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for _, l := range []struct {
		tree *tree
		what string
	}{
		{base, "shared libraries, CA certificates, passwd/group, /tmp"},
		{app, "kfop at " + binaryPath},
	} {
		layer, err := l.tree.layer()
		if err != nil {
			return err
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     layer,
			MediaType: types.OCILayer,
			History:   v1.History{Created: created, CreatedBy: "hack/image-oci: " + l.what, Comment: "offline build"},
		})
		if err != nil {
			return err
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = created
	cfg.OS = "linux"
	cfg.Architecture = arch
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if haveCerts {
		env = append(env, "SSL_CERT_FILE="+certsPath)
	}
	labels := map[string]string{
		"org.opencontainers.image.title":    "kfop",
		"org.opencontainers.image.source":   source,
		"org.opencontainers.image.licenses": licenses,
	}
	if version != "" {
		labels["org.opencontainers.image.version"] = version
	}
	cfg.Config = v1.Config{
		Entrypoint: []string{binaryPath},
		Cmd:        []string{"run"},
		User:       fmt.Sprintf("%d:%d", nonroot, nonroot),
		WorkingDir: "/",
		Env:        env,
		Labels:     labels,
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}

	// The layout goes to a directory beside the output, then into the archive, which replaces
	// the output only when complete.
	outDir := filepath.Dir(out)
	work, err := os.MkdirTemp(outDir, ".image-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	lp, err := layout.Write(filepath.Join(work, "layout"), empty.Index)
	if err != nil {
		return err
	}
	annotations := map[string]string{
		"org.opencontainers.image.ref.name": tag,
		// containerd (`ctr images import`, kind, k3s) names the image from this one.
		"io.containerd.image.name": tag,
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(annotations)); err != nil {
		return err
	}
	partial := filepath.Join(work, "archive.tar")
	if err := tarDir(filepath.Join(work, "layout"), partial, epoch); err != nil {
		return err
	}
	if err := os.Rename(partial, out); err != nil {
		return err
	}
	info, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Printf("image %s (%s, linux/%s)\n", tag, out, arch)
	fmt.Printf("digest: %s\n", digest)
	fmt.Printf("size: %d bytes (%.1f MiB)\n", info.Size(), float64(info.Size())/(1<<20))
	return nil
}

func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
	}
	return time.Unix(n, 0).UTC(), nil
}

// inspectELF returns the binary's architecture (as GOARCH names it, which OCI uses) and its
// dynamic loader ("" when static).
func inspectELF(binary string) (arch, interp string, err error) {
	f, err := elf.Open(binary)
	if err != nil {
		return "", "", fmt.Errorf("%s: not an ELF executable: %w", binary, err)
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		arch = "amd64"
	case elf.EM_AARCH64:
		arch = "arm64"
	case elf.EM_386:
		arch = "386"
	case elf.EM_ARM:
		arch = "arm"
	case elf.EM_PPC64:
		arch = "ppc64le"
	case elf.EM_S390:
		arch = "s390x"
	case elf.EM_RISCV:
		arch = "riscv64"
	default:
		return "", "", fmt.Errorf("%s: unknown ELF machine %s", binary, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				return "", "", err
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	return arch, interp, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// tree is the content of one layer: paths (without the leading slash) to entries.
type tree struct {
	epoch   time.Time
	entries map[string]*tar.Header
	content map[string][]byte
}

func newTree(epoch time.Time) *tree {
	return &tree{epoch: epoch, entries: map[string]*tar.Header{}, content: map[string][]byte{}}
}

func (t *tree) header(name string, typ byte, mode int64, uid, gid int) *tar.Header {
	return &tar.Header{
		Typeflag: typ, Name: name, Mode: mode, Uid: uid, Gid: gid,
		ModTime: t.epoch, Format: tar.FormatPAX,
	}
}

// parents adds a 0755 root-owned directory for each ancestor of p not already present.
func (t *tree) parents(p string) {
	for dir := path.Dir(p); dir != "." && dir != "/" && dir != ""; dir = path.Dir(dir) {
		name := dir + "/"
		if _, ok := t.entries[name]; !ok {
			t.entries[name] = t.header(name, tar.TypeDir, 0o755, 0, 0)
		}
	}
}

func (t *tree) dir(p string, mode int64, uid, gid int) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	t.parents(p)
	t.entries[p+"/"] = t.header(p+"/", tar.TypeDir, mode, uid, gid)
}

func (t *tree) file(p string, mode int64, data []byte) {
	p = strings.TrimPrefix(path.Clean(p), "/")
	t.parents(p)
	h := t.header(p, tar.TypeReg, mode, 0, 0)
	h.Size = int64(len(data))
	t.entries[p] = h
	t.content[p] = data
}

// layer returns the tree as a gzip-compressed layer, entries sorted by name (so parents come
// first).
func (t *tree) layer() (v1.Layer, error) {
	names := make([]string, 0, len(t.entries))
	for name := range t.entries {
		names = append(names, name)
	}
	sort.Strings(names)
	var compressed bytes.Buffer
	// The default level: BestCompression saves about 1% and takes three times as long.
	zw, err := gzip.NewWriterLevel(&compressed, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, name := range names {
		if err := tw.WriteHeader(t.entries[name]); err != nil {
			return nil, err
		}
		if data, ok := t.content[name]; ok {
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	blob := compressed.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// tarDir writes the files under dir into a tar archive at out: sorted, with fixed times and
// owners, so equal layouts give equal archives.
func tarDir(dir, out string, epoch time.Time) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, name := range names {
		p := filepath.Join(dir, filepath.FromSlash(name))
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: name, Mode: 0o644, ModTime: epoch, Format: tar.FormatPAX}
		switch {
		case info.IsDir():
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, name+"/", 0o755
		case info.Mode().IsRegular():
			h.Typeflag, h.Size = tar.TypeReg, info.Size()
		default:
			return fmt.Errorf("%s: unexpected file type in the layout", p)
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg {
			src, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			src.Close()
			if err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
