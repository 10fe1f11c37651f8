// Command krusty-bench times kustomize's own library (sigs.k8s.io/kustomize/api krusty, the engine
// inside kubectl's kustomize) building kustomization directories in-process, the way
// benches/render.rs times kfop's renderer, so hack/bench-render.sh can print their ratio.
//
// Usage: krusty-bench -root TREE -dirs DIRS.TXT [-rounds N] [-largest DIR]
//
// It builds every directory listed in DIRS.TXT (relative to TREE) once to warm up, then N more
// times, and prints one line of JSON: the mean and best seconds per round over all directories,
// how many built, and the same for one directory given with -largest.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

type timing struct {
	Mean  float64 `json:"mean_seconds"`
	Best  float64 `json:"best_seconds"`
	Built int     `json:"built"`
	Total int     `json:"total"`
}

func main() {
	root := flag.String("root", "", "the corpus tree")
	dirsFile := flag.String("dirs", "", "a file listing directories relative to -root, one a line")
	rounds := flag.Int("rounds", 5, "measured rounds after one warm-up round")
	largest := flag.String("largest", "", "one directory (relative to -root) to time on its own")
	flag.Parse()
	// kustomize logs deprecation warnings for every build; they are not what is measured.
	log.SetOutput(io.Discard)
	if *root == "" || *dirsFile == "" || *rounds < 1 {
		flag.Usage()
		os.Exit(2)
	}
	text, err := os.ReadFile(*dirsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var dirs []string
	for _, line := range strings.Split(string(text), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			dirs = append(dirs, filepath.Join(*root, line))
		}
	}
	result := map[string]timing{"all": measure(dirs, *rounds)}
	if *largest != "" {
		result["largest"] = measure([]string{filepath.Join(*root, *largest)}, *rounds*20)
	}
	out, _ := json.Marshal(result)
	fmt.Println(string(out))
}

// measure builds every directory once (warm-up), then `rounds` times, timing each round.
func measure(dirs []string, rounds int) timing {
	fs := filesys.MakeFsOnDisk()
	kustomizer := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	built := 0
	for _, dir := range dirs {
		if _, err := kustomizer.Run(fs, dir); err == nil {
			built++
		} else {
			fmt.Fprintf(os.Stderr, "krusty: %s: %v\n", dir, err)
		}
	}
	var sum, best float64
	for r := 0; r < rounds; r++ {
		start := time.Now()
		for _, dir := range dirs {
			_, _ = kustomizer.Run(fs, dir)
		}
		seconds := time.Since(start).Seconds()
		sum += seconds
		if r == 0 || seconds < best {
			best = seconds
		}
	}
	return timing{Mean: sum / float64(rounds), Best: best, Built: built, Total: len(dirs)}
}
