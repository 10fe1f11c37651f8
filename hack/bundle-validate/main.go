// Command bundle-validate checks kfop's OLM bundle (bundle/: manifests/*.yaml and
// metadata/annotations.yaml) with operator-framework's own validators, the ones that
// `operator-sdk bundle validate --select-optional suite=operatorframework` runs: the default
// bundle validators (CSV, CRDs, bundle), OperatorHub's (v2, plus the standard capabilities and
// categories that v2 split out of it) and the good-practices one.
//
// Usage: bundle-validate [-k8s-version 1.37.2] <bundle-dir>
//
// Prints every result as `ERROR <validator>/<type>: <detail>` or `WARNING ...`, then
// `N errors, M warnings`. Exits 1 on any error or warning, 2 when the bundle cannot be loaded.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	"github.com/operator-framework/api/pkg/validation/errors"
	interfaces "github.com/operator-framework/api/pkg/validation/interfaces"
)

func main() {
	k8sVersion := flag.String("k8s-version", "", "Kubernetes version the bundle targets (OperatorHub's removed-API checks fail instead of warn from it on)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: bundle-validate [-k8s-version X.Y.Z] <bundle-dir>")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	// The bundle root, not manifests/: the loader then also reads metadata/annotations.yaml
	// (package, channels, default channel), which the good-practices validator checks.
	bundle, err := manifests.GetBundleFromDir(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "bundle-validate: cannot load the bundle in %s: %v\n", flag.Arg(0), err)
		os.Exit(2)
	}
	// Validators pick what they check out of the objects by type; the map carries the
	// optional values (only `k8s-version` is read, by the OperatorHub validator).
	objs := append(bundle.ObjectsToValidate(), map[string]string{"k8s-version": *k8sVersion})
	sets := []struct {
		name       string
		validators interfaces.Validators
	}{
		{"default", validation.DefaultBundleValidators},
		{"operatorhub", interfaces.Validators{validation.OperatorHubV2Validator,
			validation.StandardCapabilitiesValidator, validation.StandardCategoriesValidator}},
		{"good-practices", interfaces.Validators{validation.GoodPracticesValidator}},
	}
	nErr, nWarn := 0, 0
	for _, set := range sets {
		for _, res := range set.validators.Validate(objs...) {
			nErr += report("ERROR", set.name, res.Errors)
			nWarn += report("WARNING", set.name, res.Warnings)
		}
	}
	fmt.Printf("%d errors, %d warnings\n", nErr, nWarn)
	if nErr+nWarn > 0 {
		os.Exit(1)
	}
}

// report prints one line per result, sorted (some validators range over maps), and returns
// how many it printed.
func report(level, set string, results []errors.Error) int {
	lines := []string{}
	for _, e := range results {
		parts := []string{}
		if e.Field != "" {
			parts = append(parts, "field "+e.Field)
		}
		if v := fmt.Sprint(e.BadValue); e.BadValue != nil && v != "" {
			parts = append(parts, v)
		}
		lines = append(lines, fmt.Sprintf("%s %s/%s: %s", level, set, e.Type, strings.Join(append(parts, e.Detail), ": ")))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	return len(lines)
}
