// Command moviola-go streams a generation from a Moviola gateway and prints each step and the
// final video URI. Interrupting it (Ctrl-C, SIGTERM) cancels the job on the server. With -out it
// saves the video through DownloadVideo, which works whatever storage the server uses.
//
//	moviola-go -server 127.0.0.1:50051 generate "a red fox running through snow"
//	moviola-go -out fox.mp4 generate "a red fox"
//	moviola-go -out poster.jpg -thumbnail download JOB_ID
//	moviola-go -out sheet.jpg -spritesheet download JOB_ID
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	moviolav1 "github.com/moviola/moviola/clients/go/moviolav1"
)

func main() {
	server := flag.String("server", defaultServer(), "HOST:PORT of a Moviola gateway (env MOVIOLA_SERVER)")
	model := flag.String("model", "", "model id (default: the server's)")
	frames := flag.Uint("frames", 0, "number of frames (default: the model's)")
	seconds := flag.Float64("seconds", 0, "seconds of video instead of -frames; past one model window, made as segments")
	steps := flag.Uint("steps", 0, "denoising steps (default: the model's)")
	out := flag.String("out", "", "save the video here (generate: once completed; download: required)")
	thumbnail := flag.Bool("thumbnail", false, "download: the poster image (JPEG) instead of the video")
	spritesheet := flag.Bool("spritesheet", false, "download: a JPEG grid of up to 25 evenly spaced frames instead of the video")
	apiKey := flag.String("api-key", os.Getenv("MOVIOLA_API_KEY"), "API key for a server with --auth-file (env MOVIOLA_API_KEY)")
	tlsCA := flag.String("tls-ca", "", "connect with TLS, trusting this CA certificate (PEM)")
	var loras loraFlags
	flag.Var(&loras, "lora", "apply a LoRA adapter the server registered, NAME or NAME:SCALE (repeatable)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: moviola-go [flags] generate PROMPT | download JOB_ID\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	command := flag.Arg(0)
	if flag.NArg() != 2 || (command != "generate" && command != "download") || (command == "download" && *out == "") || (*thumbnail && *spritesheet) {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *apiKey != "" { // every call carries the key: authorization: Bearer KEY
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*apiKey)
	}
	// WithInsecure: plaintext, as in a cluster network; it builds with old and new grpc-go alike.
	transport := grpc.WithInsecure()
	if *tlsCA != "" {
		tlsCredentials, err := credentials.NewClientTLSFromFile(*tlsCA, "")
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		transport = grpc.WithTransportCredentials(tlsCredentials)
	}
	conn, err := grpc.Dial(*server, transport)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	defer conn.Close()
	client := moviolav1.NewGenerationServiceClient(conn)
	if command == "download" {
		variant := moviolav1.VideoVariant_VIDEO_VARIANT_VIDEO
		if *thumbnail {
			variant = moviolav1.VideoVariant_VIDEO_VARIANT_THUMBNAIL
		} else if *spritesheet {
			variant = moviolav1.VideoVariant_VIDEO_VARIANT_SPRITESHEET
		}
		os.Exit(download(ctx, client, flag.Arg(1), variant, *out))
	}
	os.Exit(generate(ctx, client, *out, &moviolav1.GenerateRequest{
		Prompt:            flag.Arg(1),
		Model:             *model,
		NumFrames:         uint32(*frames),
		Seconds:           *seconds,
		NumInferenceSteps: uint32(*steps),
		Loras:             loras,
	}))
}

// loraFlags collects -lora NAME[:SCALE] flags as the request's adapters.
type loraFlags []*moviolav1.LoraAdapter

func (l *loraFlags) String() string { return fmt.Sprint(len(*l), " adapters") }

func (l *loraFlags) Set(value string) error {
	adapter := &moviolav1.LoraAdapter{Name: value}
	if i := strings.LastIndex(value, ":"); i >= 0 {
		scale, err := strconv.ParseFloat(value[i+1:], 32)
		if err != nil {
			return fmt.Errorf("-lora %q: want NAME or NAME:SCALE", value)
		}
		s := float32(scale)
		adapter = &moviolav1.LoraAdapter{Name: value[:i], Scale: &s}
	}
	*l = append(*l, adapter)
	return nil
}

// defaultServer is $MOVIOLA_SERVER, the variable the Python CLI reads too, else the local default.
func defaultServer() string {
	if server := os.Getenv("MOVIOLA_SERVER"); server != "" {
		return server
	}
	return "127.0.0.1:50051"
}

func generate(ctx context.Context, client moviolav1.GenerationServiceClient, out string, request *moviolav1.GenerateRequest) int {
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
				return cancel(ctx, client, jobID)
			}
			fmt.Fprintln(os.Stderr, "error:", err)
			return 1
		}
		event := response.GetEvent()
		jobID = event.GetJobId()
		if code, done := show(event); done {
			if code == 0 && out != "" {
				return download(ctx, client, jobID, moviolav1.VideoVariant_VIDEO_VARIANT_VIDEO, out)
			}
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
func cancel(caller context.Context, client moviolav1.GenerationServiceClient, jobID string) int {
	ctx, done := context.WithTimeout(context.Background(), 10*time.Second)
	if md, ok := metadata.FromOutgoingContext(caller); ok { // the same API key
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	defer done()
	if _, err := client.CancelJob(ctx, &moviolav1.CancelJobRequest{JobId: jobID}); err != nil {
		fmt.Fprintln(os.Stderr, "could not cancel job", jobID+":", err)
		return 1
	}
	fmt.Printf("cancelled job %s on the server\n", jobID)
	return 130
}

// download streams a completed job's video (or poster, or spritesheet) into a file, written whole or not at all.
func download(ctx context.Context, client moviolav1.GenerationServiceClient, jobID string, variant moviolav1.VideoVariant, out string) int {
	stream, err := client.DownloadVideo(ctx, &moviolav1.DownloadVideoRequest{JobId: jobID, Variant: variant})
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	partial := out + ".part"
	file, err := os.Create(partial)
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	defer os.Remove(partial) // gone after the rename; left behind only if the download failed
	written := 0
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			file.Close()
			fmt.Fprintln(os.Stderr, "error:", err)
			return 1
		}
		n, err := file.Write(response.GetData())
		written += n
		if err != nil {
			file.Close()
			fmt.Fprintln(os.Stderr, "error:", err)
			return 1
		}
	}
	if err := file.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	if err := os.Rename(partial, out); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	fmt.Printf("saved %s (%d bytes)\n", out, written)
	return 0
}
