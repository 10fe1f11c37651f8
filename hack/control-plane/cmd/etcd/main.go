// Command etcd is the upstream etcd server entry point, built from the Go module registry for kfop's tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
