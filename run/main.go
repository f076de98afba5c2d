// Command run is the peer's run hook: it starts the chaincode in Kubernetes and lives
// exactly as long as it does. On SIGTERM it deletes what it created and exits 0.
// Resident launches go to run-pod beside it, when it is there.
package main

import (
	"github.com/kubecc/kubecc/pkg/runhook"
	"github.com/kubecc/kubecc/pkg/serverless"
)

func main() { runhook.Main(serverless.Run) }
