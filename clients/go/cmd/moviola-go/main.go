// Command moviola-go streams a generation from a Moviola gateway and prints each step and the
// final video URI. Interrupting it (Ctrl-C, SIGTERM) cancels the job on the server.
//
//	moviola-go -server 127.0.0.1:50051 generate "a red fox running through snow"
//
// The server defaults to $MOVIOLA_SERVER (as for the Python CLI), else 127.0.0.1:50051.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"

	moviolav1 "github.com/moviola/moviola/clients/go/moviolav1"
)

func main() {
	server := flag.String("server", defaultServer(), "HOST:PORT of a Moviola gateway (env MOVIOLA_SERVER)")
	model := flag.String("model", "", "model id (default: the server's)")
	frames := flag.Uint("frames", 0, "number of frames (default: the model's)")
	steps := flag.Uint("steps", 0, "denoising steps (default: the model's)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: moviola-go [flags] generate PROMPT\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 || flag.Arg(0) != "generate" {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(generate(ctx, *server, &moviolav1.GenerateRequest{
		Prompt:            flag.Arg(1),
		Model:             *model,
		NumFrames:         uint32(*frames),
		NumInferenceSteps: uint32(*steps),
	}))
}

// defaultServer is $MOVIOLA_SERVER, the variable the Python CLI reads too, else the local default.
func defaultServer() string {
	if server := os.Getenv("MOVIOLA_SERVER"); server != "" {
		return server
	}
	return "127.0.0.1:50051"
}

func generate(ctx context.Context, server string, request *moviolav1.GenerateRequest) int {
	// WithInsecure: plaintext, as in a cluster network; it builds with old and new grpc-go alike.
	conn, err := grpc.Dial(server, grpc.WithInsecure())
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	defer conn.Close()
	client := moviolav1.NewGenerationServiceClient(conn)
	stream, err := client.Generate(ctx, request)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	jobID := ""
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			return 0
		}
		if err != nil {
			if ctx.Err() != nil && jobID != "" {
				return cancel(client, jobID)
			}
			fmt.Fprintln(os.Stderr, "error:", err)
			return 1
		}
		event := response.GetEvent()
		jobID = event.GetJobId()
		if code, done := show(event); done {
			return code
		}
	}
}

// show prints one event; it reports whether the event ends the job, and the exit code.
func show(event *moviolav1.JobEvent) (int, bool) {
	switch kind := event.Kind.(type) {
	case *moviolav1.JobEvent_Queued:
		fmt.Printf("job %s queued at position %d (model %s)\n", event.GetJobId(), kind.Queued.GetPosition(), event.GetModel())
	case *moviolav1.JobEvent_Started:
		fmt.Printf("started on %s\n", kind.Started.GetWorker())
	case *moviolav1.JobEvent_PhaseChanged:
		fmt.Printf("phase %s\n", kind.PhaseChanged.GetPhase())
	case *moviolav1.JobEvent_Progress:
		p := kind.Progress
		fmt.Printf("step %d/%d %s\n", p.GetStep(), p.GetTotalSteps(), p.GetExpert())
	case *moviolav1.JobEvent_Completed:
		fmt.Printf("completed %s\n", kind.Completed.GetVideoUri())
		return 0, true
	case *moviolav1.JobEvent_Failed:
		fmt.Printf("failed %s: %s\n", kind.Failed.GetCode(), kind.Failed.GetMessage())
		return 1, true
	case *moviolav1.JobEvent_Cancelled:
		fmt.Printf("cancelled: %s\n", kind.Cancelled.GetReason())
		return 1, true
	}
	return 0, false
}

// cancel asks the server to cancel the job: the caller's context is done, so use a fresh one.
func cancel(client moviolav1.GenerationServiceClient, jobID string) int {
	ctx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if _, err := client.CancelJob(ctx, &moviolav1.CancelJobRequest{JobId: jobID}); err != nil {
		fmt.Fprintln(os.Stderr, "could not cancel job", jobID+":", err)
		return 1
	}
	fmt.Printf("cancelled job %s on the server\n", jobID)
	return 130
}
