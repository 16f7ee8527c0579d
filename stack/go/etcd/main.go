// Command etcd is etcd's own server entry point, built from go.etcd.io/etcd/server/v3 at the
// version that the Kubernetes release in ../kubernetes pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
