// Command run-serverless is the run hook with the serverless relay (and so gRPC):
// run hands job-mode launches to it, same pid, arguments and environment. It
// launches resident chaincode too when called directly.
package main

import (
	"github.com/kubecc/kubecc/pkg/runhook"
	"github.com/kubecc/kubecc/pkg/serverless"
)

func main() { runhook.Main(serverless.Run) }
