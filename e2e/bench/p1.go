package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubecc/kubecc/pkg/image"
)

func init() {
	register(Benchmark{ID: "P1", Title: "Go source package → image pushed, and image size (kubecc vs ko)", Run: runP1})
}

// p1Tool is one way of building the chaincode image into a repository.
type p1Tool struct {
	name string
	// build compiles and pushes into repo (a fresh one, or an earlier one for a rebuild).
	build func(ctx context.Context, repo string) (*Timed, error)
	// ref extracts the pushed image reference from the tool's output.
	ref func(t *Timed) string
	// check says what is wrong with a run's output, if anything (rebuild: want reuse).
	check func(t *Timed, rebuild bool) error
}

// p1Run is the result of one fresh build.
type p1Run struct {
	t    *Timed
	ref  string
	size int64
}

func runP1(ctx context.Context, env *Env) (string, error) {
	ko := os.Getenv("KO")
	if ko == "" {
		return "", fmt.Errorf("KO is not set: run through e2e/bench.sh, which builds ko v0.18.0")
	}
	kubecc := filepath.Join(env.Root, "bin", "kubecc")
	if _, err := os.Stat(kubecc); err != nil {
		return "", fmt.Errorf("%s: %w (run make all)", kubecc, err)
	}
	src := filepath.Join(env.Root, "examples", "chaincode", "go")

	// The same base for both tools: kubecc's built-in base, pushed once.
	base := env.Registry + "/bench/base:v1"
	if err := pushBase(ctx, base); err != nil {
		return "", err
	}

	// The same toolchain settings for both: static, no VCS stamping, warm caches.
	common := without(os.Environ(), "KOCACHE", "KO_CONFIG_PATH", "KO_DOCKER_REPO", "KO_DEFAULTBASEIMAGE",
		"KUBECC_CONFIG", "KUBECC_REGISTRY", "KUBECC_BASE_IMAGE", "KUBECC_GOARCH", "GOOS", "GOARCH")
	common = withEnv(common, "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")

	kubeccEnv := withEnv(common, "KUBECC_BASE_IMAGE="+base, "KUBECC_REGISTRY_INSECURE=true",
		"KUBECC_INSECURE_REGISTRIES="+env.Registry, "KUBECC_GOARCH=amd64")
	stripped, err := os.MkdirTemp("", "kubecc-bench-ko-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(stripped) }()
	koYAML := fmt.Sprintf("defaultBaseImage: %s\ndefaultLdflags: [\"-s\", \"-w\"]\n", base)
	if err := os.WriteFile(filepath.Join(stripped, ".ko.yaml"), []byte(koYAML), 0o644); err != nil {
		return "", err
	}
	koArgs := []string{"build", "--bare", "--sbom=none", "--platform=linux/amd64", "."}
	koTool := func(label string, extra ...string) p1Tool {
		return p1Tool{
			name: label,
			build: func(ctx context.Context, repo string) (*Timed, error) {
				e := withEnv(common, append([]string{"KO_DEFAULTBASEIMAGE=" + base, "KO_DOCKER_REPO=" + repo}, extra...)...)
				return timed(ctx, src, e, ko, koArgs...)
			},
			ref: func(t *Timed) string { return lastLine(t.Stdout) },
			check: func(t *Timed, rebuild bool) error {
				if _, _, ok := t.First("Building "); !ok {
					return fmt.Errorf("ko did not log a build")
				}
				return nil
			},
		}
	}
	tools := []p1Tool{
		{
			name: "kubecc",
			build: func(ctx context.Context, repo string) (*Timed, error) {
				return timed(ctx, env.Root, kubeccEnv, kubecc, "build", "--registry", repo, src)
			},
			ref: func(t *Timed) string { return lastLine(t.Stdout) },
			check: func(t *Timed, rebuild bool) error {
				_, _, reused := t.First("reused, nothing compiled")
				_, _, compiled := t.First("compiled in")
				switch {
				case rebuild && !reused:
					return fmt.Errorf("unchanged rebuild was not reused")
				case !rebuild && !compiled:
					return fmt.Errorf("fresh build did not compile")
				}
				return nil
			},
		},
		koTool("ko"),
		koTool("ko -s -w", "KO_CONFIG_PATH="+stripped),
	}

	repo := func(tool string, run string) string {
		return fmt.Sprintf("%s/bench-%s-%s-%s", env.Registry, strings.ReplaceAll(strings.ReplaceAll(tool, " ", ""), "-", ""), env.RunID, run)
	}
	once := func(ctx context.Context, tl p1Tool, r string, rebuild bool) (*p1Run, error) {
		t, err := tl.build(ctx, r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tl.name, err)
		}
		if err := tl.check(t, rebuild); err != nil {
			return nil, fmt.Errorf("%s into %s: %w", tl.name, r, err)
		}
		ref := tl.ref(t)
		size, err := imageSize(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tl.name, err)
		}
		return &p1Run{t: t, ref: ref, size: size}, nil
	}

	// Warm-up, not timed: module and build caches hot for every tool.
	for _, tl := range tools {
		r, err := once(ctx, tl, repo(tl.name, "warm"), false)
		if err != nil {
			return "", err
		}
		env.Logf("P1 warm-up %-8s %6.2f s  %s", tl.name, r.t.Wall.Seconds(), r.ref)
	}

	// Fresh builds, alternating the order so that drift hits every tool alike.
	fresh := map[string][]*p1Run{}
	for i := 0; i < env.N; i++ {
		order := append([]p1Tool(nil), tools...)
		if i%2 == 1 {
			for a, b := 0, len(order)-1; a < b; a, b = a+1, b-1 {
				order[a], order[b] = order[b], order[a]
			}
		}
		for _, tl := range order {
			r, err := once(ctx, tl, repo(tl.name, fmt.Sprint(i)), false)
			if err != nil {
				return "", err
			}
			fresh[tl.name] = append(fresh[tl.name], r)
			env.Logf("P1 run %d/%d %-8s %6.2f s  %7d bytes", i+1, env.N, tl.name, r.t.Wall.Seconds(), r.size)
		}
	}

	// Unchanged rebuilds into the repository of an earlier run: kubecc finds its
	// image by content hash; ko (baseline, for reference) compiles again.
	rebuild := map[string][]*p1Run{}
	for i := 0; i < env.N; i++ {
		order := []p1Tool{tools[0], tools[1]}
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, tl := range order {
			r, err := once(ctx, tl, repo(tl.name, fmt.Sprint(i)), tl.name == "kubecc")
			if err != nil {
				return "", err
			}
			if prev := fresh[tl.name][i]; digestOf(r.ref) != digestOf(prev.ref) {
				env.Logf("P1 note: %s rebuild gave %s, first build %s", tl.name, digestOf(r.ref), digestOf(prev.ref))
			}
			rebuild[tl.name] = append(rebuild[tl.name], r)
			env.Logf("P1 rebuild %d/%d %-8s %6.2f s", i+1, env.N, tl.name, r.t.Wall.Seconds())
		}
	}

	env.Logf("P1 profile: kubecc's steps one by one")
	prof, err := runP1Profile(ctx, env, src, base, common)
	if err != nil {
		return "", fmt.Errorf("profile: %w", err)
	}
	return p1Report(env, base, fresh, rebuild, prof), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func digestOf(ref string) string {
	if _, d, ok := strings.Cut(ref, "@"); ok {
		return d
	}
	return ref
}

// pushBase pushes kubecc's built-in base to ref unless it is already there.
func pushBase(ctx context.Context, ref string) error {
	img, err := image.Base("amd64")
	if err != nil {
		return err
	}
	want, err := img.Digest()
	if err != nil {
		return err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	if desc, err := remote.Head(r, remote.WithContext(ctx)); err == nil && desc.Digest == want {
		return nil
	}
	if err := remote.Write(r, img, remote.WithContext(ctx)); err != nil {
		return fmt.Errorf("push base %s: %w", ref, err)
	}
	return nil
}

// imageSize is the compressed size of ref as stored in the registry: manifest,
// config and layers (for an index: the index too, and its linux/amd64 image).
func imageSize(ctx context.Context, ref string) (int64, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return 0, fmt.Errorf("image reference %q: %w", ref, err)
	}
	desc, err := remote.Get(r, remote.WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", ref, err)
	}
	var total int64
	var img v1.Image
	if desc.MediaType.IsIndex() {
		total += int64(len(desc.Manifest))
		img, err = remote.Image(r, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "amd64"}))
	} else {
		img, err = desc.Image()
	}
	if err != nil {
		return 0, fmt.Errorf("image %s: %w", ref, err)
	}
	size, err := image.Size(img)
	return total + size, err
}

var builderTook = regexp.MustCompile(`\bin ([0-9.]+(?:ns|µs|us|ms|s|m[0-9.]+s)+)$|\(([0-9.]+(?:ns|µs|us|ms|s))\)$`)

// builderSeconds is the builder's own figure from a kubecc "pushed ... in X" or
// "reused, nothing compiled (X)" line.
func builderSeconds(t *Timed, sub string) (float64, bool) {
	_, line, ok := t.First(sub)
	if !ok {
		return 0, false
	}
	m := builderTook.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	s := m[1]
	if s == "" {
		s = m[2]
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, false
	}
	return d.Seconds(), true
}

// phases splits a run's wall time at the first stderr lines containing marks.
func phases(t *Timed, marks ...string) ([]float64, bool) {
	var out []float64
	prev := time.Duration(0)
	for _, m := range marks {
		at, _, ok := t.First(m)
		if !ok {
			return nil, false
		}
		out = append(out, (at - prev).Seconds())
		prev = at
	}
	return append(out, (t.Wall - prev).Seconds()), true
}

func p1Report(env *Env, base string, fresh, rebuild map[string][]*p1Run, prof *p1Profile) string {
	wall := func(runs []*p1Run) Sample {
		var s Sample
		for _, r := range runs {
			s = append(s, r.t.Wall.Seconds())
		}
		return s
	}
	size := func(runs []*p1Run) Sample {
		var s Sample
		for _, r := range runs {
			s = append(s, float64(r.size))
		}
		return s
	}
	kt, ot, st := wall(fresh["kubecc"]), wall(fresh["ko"]), wall(fresh["ko -s -w"])
	ks, os_, ss := size(fresh["kubecc"]), size(fresh["ko"]), size(fresh["ko -s -w"])
	kr, or := wall(rebuild["kubecc"]), wall(rebuild["ko"])
	timeRatio := kt.Median() / ot.Median()
	sizeRatio := ks.Median() / os_.Median()

	var b strings.Builder
	b.WriteString(env.Machine.Markdown(env.Command))
	fmt.Fprintf(&b, "\nN=%d runs per figure, kubecc and ko alternated; figures are median (min–max).\n\n", env.N)
	b.WriteString("| figure | kubecc | ko v0.18.0 (baseline) | ratio kubecc/ko | goal | result |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| build + push into a fresh repository, wall time | %s | %s | %.2f | ratio ≤ 1.0 | %s |\n",
		kt.Format(secs), ot.Format(secs), timeRatio, passMiss(timeRatio <= 1.0))
	fmt.Fprintf(&b, "| image size, compressed (manifest + config + layers) | %s | %s | %.2f | ≤ ko's | %s |\n",
		ks.Format(mib), os_.Format(mib), sizeRatio, passMiss(ks.Median() <= os_.Median()))
	fmt.Fprintf(&b, "| unchanged rebuild into the same repository, wall time | %s | %s (compiles and pushes again) | %.2f | ≤ 1 s | %s |\n",
		kr.Format(secs), or.Format(secs), kr.Median()/or.Median(), passMiss(kr.Median() <= 1.0))
	fmt.Fprintf(&b, "| for reference: ko with kubecc's `-ldflags=-s -w`, build + push | %s | %s | %.2f | | (info) |\n",
		kt.Format(secs), st.Format(secs), kt.Median()/st.Median())
	fmt.Fprintf(&b, "| for reference: ko with kubecc's `-ldflags=-s -w`, image size | %s | %s | %.2f | | (info) |\n",
		ks.Format(mib), ss.Format(mib), ks.Median()/ss.Median())

	// Where the time goes, from the tools' own progress lines as they arrived.
	var kb, kreuse Sample
	kph := make([]Sample, 4)
	for _, r := range fresh["kubecc"] {
		if v, ok := builderSeconds(r.t, "kubecc: pushed "); ok {
			kb = append(kb, v)
		}
		if p, ok := phases(r.t, "kubecc: compiling", "kubecc: compiled in", "kubecc: pushed "); ok {
			for i := range p {
				kph[i] = append(kph[i], p[i])
			}
		}
	}
	for _, r := range rebuild["kubecc"] {
		if v, ok := builderSeconds(r.t, "reused, nothing compiled"); ok {
			kreuse = append(kreuse, v)
		}
	}
	oph := map[string][]Sample{}
	for _, n := range []string{"ko", "ko -s -w"} {
		oph[n] = make([]Sample, 4)
		for _, r := range fresh[n] {
			if p, ok := phases(r.t, "Building ", "Publishing ", "Published "); ok {
				for i := range p {
					oph[n][i] = append(oph[n][i], p[i])
				}
			}
		}
	}
	b.WriteString("\nWhere the wall time goes (split at each tool's progress lines on stderr, as they arrived):\n\n")
	b.WriteString("| phase | kubecc | ko | ko -s -w |\n|---|---|---|---|\n")
	fmt.Fprintf(&b, "| start → compile starts (kubecc: copy + hash source, fetch base, registry lookup; ko: load config, go list, fetch base) | %s | %s | %s |\n",
		kph[0].Format(secs), oph["ko"][0].Format(secs), oph["ko -s -w"][0].Format(secs))
	fmt.Fprintf(&b, "| compile (kubecc: `go build` alone; ko: \"Building\" → \"Publishing\": `go build`, then the layer tar and its gzip, as ko computes the digest before it publishes) | %s | %s | %s |\n",
		kph[1].Format(secs), oph["ko"][1].Format(secs), oph["ko -s -w"][1].Format(secs))
	fmt.Fprintf(&b, "| kubecc: assemble (tar + gzip) + push; ko: push (\"Publishing\" → \"Published\") | %s | %s | %s |\n",
		kph[2].Format(secs), oph["ko"][2].Format(secs), oph["ko -s -w"][2].Format(secs))
	fmt.Fprintf(&b, "| exit | %s | %s | %s |\n",
		kph[3].Format(secs), oph["ko"][3].Format(secs), oph["ko -s -w"][3].Format(secs))
	fmt.Fprintf(&b, "\nkubecc's builder's own figure (the \"pushed ... in\" line the build hook prints): %s for a fresh build, %s for the unchanged rebuild.\n",
		kb.Format(secs), kreuse.Format(secs))
	b.WriteString(prof.Markdown())

	fmt.Fprintf(&b, "\nSetup: the same chaincode (`examples/chaincode/go`, Go shim) and the same base for both: kubecc's built-in base (`image.Base(\"amd64\")`) pushed once to `%s`, used as `KUBECC_BASE_IMAGE` and `KO_DEFAULTBASEIMAGE`. ", base)
	b.WriteString("Each timed run pushes into a new repository (`bench-<tool>-<run id>-<n>`), so neither tool can skip the compile or the push. ")
	b.WriteString("Both with `CGO_ENABLED=0 GOFLAGS=-buildvcs=false`, `-trimpath`, GOOS/GOARCH linux/amd64 and a warm Go build and module cache (one untimed warm-up build per tool first). ")
	b.WriteString("kubecc: `bin/kubecc build --registry R examples/chaincode/go` (the build hook's pipeline), which compiles with `-ldflags=-s -w`. ")
	b.WriteString("ko: `ko build --bare --sbom=none --platform=linux/amd64 .` in `examples/chaincode/go` with `KO_DOCKER_REPO=R`; ko's default ldflags are empty, so its binary keeps the symbol table and DWARF: the baseline is ko as shipped, and the \"ko -s -w\" rows (`defaultLdflags: [-s, -w]` in a `.ko.yaml`) compare like with like. ")
	b.WriteString("`--sbom=none`: kubecc writes no SBOM, so ko is spared its SBOM step (ko's default would add it to ko's time). ")
	b.WriteString("ko v0.18.0 is built from the module proxy by e2e/bench.sh (`~/.cache/kubecc/ko-v0.18.0/ko`). ")
	b.WriteString("Image size is the compressed size in the registry, from the manifest fetched with go-containerregistry. ")
	b.WriteString("The unchanged rebuild is `bin/kubecc build` into a repository that already holds the image: kubecc finds it by content hash and compiles nothing; ko has no such check and builds again (its figure is for reference).\n")
	return b.String()
}
