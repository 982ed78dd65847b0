// The etcd server as the etcd command runs it (etcdmain.Main with the process's arguments).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
