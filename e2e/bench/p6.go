package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func init() {
	register(Benchmark{ID: "P6", Title: "build in the cluster (a Kubernetes Job) vs on the host, example Go chaincode", Run: runP6})
}

// runP6 builds the example chaincode N times each way, into fresh repositories so
// that nothing is reused: on the host (the Go caches warm, as on a peer that has
// built before), in a Job with no cache volume (every Job cold), and in a Job with
// the harness's cache volume; then an unchanged rebuild, which must start no Job.
func runP6(ctx context.Context, env *Env) (string, error) {
	b, err := harnessVars("builds.env", "cluster/env")
	if err != nil {
		return "", err
	}
	kubecc := filepath.Join(env.Root, "bin", "kubecc")
	src := filepath.Join(env.Root, "examples", "chaincode", "go")
	base := without(os.Environ(), "KUBECC_CONFIG", "KUBECC_REGISTRY", "KUBECC_BUILD_IN", "KUBECC_BUILD_CACHE", "KUBECC_BASE_IMAGE")
	local := withEnv(base, "KUBECC_BUILD_IN=local", "KUBECC_REGISTRY_INSECURE=true", "KUBECC_INSECURE_REGISTRIES="+b["REGISTRY_POD"])
	cluster := withEnv(base, "KUBECC_BUILD_IN=cluster", "KUBECC_REGISTRY_INSECURE=true", "KUBECC_INSECURE_REGISTRIES="+b["REGISTRY_POD"],
		"KUBECONFIG="+b["KUBECONFIG"], "KUBECC_NAMESPACE=kubecc", "KUBECC_IMAGE="+b["KUBECC_IMAGE"],
		"KUBECC_BUILD_IMAGE_GOLANG="+b["GO_TOOLCHAIN_IMAGE"], "KUBECC_BUILD_ENV=GOPROXY="+b["BUILD_GOPROXY"])
	cached := withEnv(cluster, "KUBECC_BUILD_CACHE=kubecc-build-cache")
	ways := []struct {
		name string
		env  []string
	}{{"host", local}, {"Job, no cache", cluster}, {"Job, cache volume", cached}}
	walls := make([]Sample, len(ways))
	phases := map[string]Sample{}
	var rebuild Sample
	for i := 0; i < env.N; i++ {
		for w, way := range ways {
			repo := fmt.Sprintf("%s/bench-p6-%s-%d-%d", b["REGISTRY_POD"], env.RunID, i, w)
			t, err := timed(ctx, env.Root, way.env, kubecc, "build", "--registry", repo, src)
			if err != nil {
				return "", fmt.Errorf("%s: %w", way.name, err)
			}
			if _, _, reused := t.First("reused, nothing compiled"); reused {
				return "", fmt.Errorf("%s: a fresh repository was reused", way.name)
			}
			walls[w] = append(walls[w], t.Wall.Seconds())
			env.Logf("P6 run %d %s: %.2f s", i+1, way.name, t.Wall.Seconds())
			if w == 0 {
				continue
			}
			for _, mark := range []string{"source pushed", "build job", "build kubecc-build-", "built in the cluster"} {
				if at, _, ok := t.First(mark); ok {
					phases[way.name+"|"+mark] = append(phases[way.name+"|"+mark], at.Seconds())
				}
			}
			if w == 2 {
				again, err := timed(ctx, env.Root, way.env, kubecc, "build", "--registry", repo, src)
				if err != nil {
					return "", fmt.Errorf("rebuild: %w", err)
				}
				if _, _, job := again.First("build job"); job {
					return "", fmt.Errorf("an unchanged rebuild started a Job")
				}
				rebuild = append(rebuild, again.Wall.Seconds())
			}
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "`kubecc build` of `examples/chaincode/go`, N=%d each, a fresh repository every time (nothing reused); `KUBECC_BUILD_IN=local` on the host (Go caches warm) against `cluster` (a Job in the harness's Go toolchain image, kubecc from its image, pushing to the registry at the node IP), without and with the `buildCache` volume (warm after the first build).\n\n", env.N)
	out.WriteString("| build | wall, median (min–max) | ratio to host |\n|---|---|---|\n")
	for w, way := range ways {
		fmt.Fprintf(&out, "| %s | %s | %.2fx |\n", way.name, walls[w].Format(secs), walls[w].Median()/walls[0].Median())
	}
	fmt.Fprintf(&out, "| unchanged rebuild (no Job) | %s | |\n\n", rebuild.Format(secs))
	ratio := walls[2].Median() / walls[0].Median()
	fmt.Fprintf(&out, "Goal: with the cache, at most 1.5x the host build: %.2fx %s.\n\n", ratio, passMiss(ratio <= 1.5))
	out.WriteString("Where the Job's time goes (seconds from the command's start, medians): ")
	for _, way := range ways[1:] {
		fmt.Fprintf(&out, "%s: source pushed %.2f, Job created %.2f, its first log line %.2f, image reported %.2f. ", way.name,
			phases[way.name+"|source pushed"].Median(), phases[way.name+"|build job"].Median(),
			phases[way.name+"|build kubecc-build-"].Median(), phases[way.name+"|built in the cluster"].Median())
	}
	out.WriteString("The Job's start (scheduling, the init container copying kubecc, the toolchain container) comes before its first log line; the compile and push after it.\n")
	out.WriteString("\n" + env.Machine.Markdown(env.Command) + "\n")
	return out.String(), nil
}
