// Command moviola-go streams a generation from a Moviola gateway and prints each step and the
// final video URI. Interrupting it (Ctrl-C, SIGTERM) cancels the job on the server. With -out it
// saves the video through DownloadVideo, which works whatever storage the server uses. extend and
// edit start a new job from a completed one (ExtendJob, EditJob) and follow it as generate does;
// characters manages the reference images that GenerateRequest.character_id names.
//
//	moviola-go -server 127.0.0.1:50051 generate "a red fox running through snow"
//	moviola-go -out fox.mp4 generate "a red fox"
//	moviola-go -seconds 12 generate "a red fox"
//	moviola-go -out poster.jpg -thumbnail download JOB_ID
//	moviola-go -out sheet.jpg -spritesheet download JOB_ID
//	moviola-go -seconds 4 extend JOB_ID "the fox runs on"
//	moviola-go -strength 0.5 edit JOB_ID "the same fox, in watercolour"
//	moviola-go characters create Ada ada.mp4
//	moviola-go characters get CHARACTER_ID
//	moviola-go characters delete CHARACTER_ID
//
// The server defaults to $MOVIOLA_SERVER (as for the Python CLI), else 127.0.0.1:50051. A call the
// server refuses prints its gRPC status (code and message, which names the field) and exits 1.
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

// usage is what -h and a wrong command line print, before the flags.
const usage = `usage: moviola-go [flags] COMMAND
  generate PROMPT               stream a new job (-model -frames -seconds -steps -lora -out)
  download JOB_ID               save a finished job's video (-out, required; -thumbnail or -spritesheet)
  extend JOB_ID PROMPT          a new job: the completed video, then -seconds (required) more; followed as generate (-out)
  edit JOB_ID PROMPT            a new job: the completed video made again from PROMPT (-strength); followed as generate (-out)
  characters create NAME VIDEO  store a character: a reference image taken from a video file
  characters get ID             show one of your characters
  characters delete ID          delete one of your characters and its image
flags:
`

// arguments is how many words each command takes, its own name (and action) included.
var arguments = map[string]int{
	"generate":          2,
	"download":          2,
	"extend":            3,
	"edit":              3,
	"characters create": 4,
	"characters get":    3,
	"characters delete": 3,
}

func main() {
	server := flag.String("server", defaultServer(), "HOST:PORT of a Moviola gateway (env MOVIOLA_SERVER)")
	model := flag.String("model", "", "model id (default: the server's)")
	frames := flag.Uint("frames", 0, "number of frames (default: the model's)")
	seconds := flag.Float64("seconds", 0, "generate: seconds of video instead of -frames, past one model window made as segments; extend: seconds to add")
	steps := flag.Uint("steps", 0, "denoising steps (default: the model's)")
	strength := flag.Float64("strength", 0, "edit: how far from the video, 0 < s <= 1, the share of the steps run (default: the server's, 0.7)")
	out := flag.String("out", "", "save the video here (generate, extend, edit: once completed; download: required)")
	thumbnail := flag.Bool("thumbnail", false, "download: the poster image (JPEG) instead of the video")
	spritesheet := flag.Bool("spritesheet", false, "download: a JPEG grid of up to 25 evenly spaced frames instead of the video")
	apiKey := flag.String("api-key", os.Getenv("MOVIOLA_API_KEY"), "API key for a server with --auth-file (env MOVIOLA_API_KEY)")
	tlsCA := flag.String("tls-ca", "", "connect with TLS, trusting this CA certificate (PEM)")
	var loras loraFlags
	flag.Var(&loras, "lora", "apply a LoRA adapter the server registered, NAME or NAME:SCALE (repeatable)")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	command := flag.Arg(0)
	if command == "characters" {
		command += " " + flag.Arg(1)
	}
	if want, known := arguments[command]; !known || flag.NArg() != want || (command == "download" && *out == "") || (command == "extend" && *seconds <= 0) || (*thumbnail && *spritesheet) {
		flag.Usage()
		os.Exit(2)
	}
	var editStrength *float64 // unset unless given: the server's default
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "strength" {
			editStrength = strength
		}
	})
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
			os.Exit(failed(err))
		}
		transport = grpc.WithTransportCredentials(tlsCredentials)
	}
	conn, err := grpc.Dial(*server, transport)
	if err != nil {
		os.Exit(failed(err))
	}
	defer conn.Close()
	client := moviolav1.NewGenerationServiceClient(conn)
	code := 0
	switch command {
	case "generate":
		code = generate(ctx, client, *out, &moviolav1.GenerateRequest{
			Prompt:            flag.Arg(1),
			Model:             *model,
			NumFrames:         uint32(*frames),
			Seconds:           *seconds,
			NumInferenceSteps: uint32(*steps),
			Loras:             loras,
		})
	case "download":
		variant := moviolav1.VideoVariant_VIDEO_VARIANT_VIDEO
		if *thumbnail {
			variant = moviolav1.VideoVariant_VIDEO_VARIANT_THUMBNAIL
		} else if *spritesheet {
			variant = moviolav1.VideoVariant_VIDEO_VARIANT_SPRITESHEET
		}
		code = download(ctx, client, flag.Arg(1), variant, *out)
	case "extend":
		code = extend(ctx, client, *out, &moviolav1.ExtendJobRequest{JobId: flag.Arg(1), Prompt: flag.Arg(2), Seconds: *seconds})
	case "edit":
		code = edit(ctx, client, *out, &moviolav1.EditJobRequest{JobId: flag.Arg(1), Prompt: flag.Arg(2), Strength: editStrength})
	case "characters create":
		code = createCharacter(ctx, client, flag.Arg(2), flag.Arg(3))
	case "characters get":
		code = getCharacter(ctx, client, flag.Arg(2))
	case "characters delete":
		code = deleteCharacter(ctx, client, flag.Arg(2))
	}
	os.Exit(code)
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
		return failed(err)
	}
	return follow(ctx, client, "", out, func() (*moviolav1.JobEvent, error) {
		response, err := stream.Recv()
		return response.GetEvent(), err
	})
}

// extend starts a job that continues a completed job's video, then follows it.
func extend(ctx context.Context, client moviolav1.GenerationServiceClient, out string, request *moviolav1.ExtendJobRequest) int {
	response, err := client.ExtendJob(ctx, request)
	if err != nil {
		return failed(err)
	}
	fmt.Printf("extending %s as %s\n", request.GetJobId(), response.GetJob().GetId())
	return watch(ctx, client, response.GetJob().GetId(), out)
}

// edit starts a job that makes a completed job's video again from a new prompt, then follows it.
func edit(ctx context.Context, client moviolav1.GenerationServiceClient, out string, request *moviolav1.EditJobRequest) int {
	response, err := client.EditJob(ctx, request)
	if err != nil {
		return failed(err)
	}
	fmt.Printf("editing %s as %s\n", request.GetJobId(), response.GetJob().GetId())
	return watch(ctx, client, response.GetJob().GetId(), out)
}

// watch follows a submitted job from its first event, as generate follows its own.
func watch(ctx context.Context, client moviolav1.GenerationServiceClient, jobID string, out string) int {
	stream, err := client.WatchJob(ctx, &moviolav1.WatchJobRequest{JobId: jobID})
	if err != nil {
		if ctx.Err() != nil { // interrupted between starting the job and following it
			return cancel(ctx, client, jobID)
		}
		return failed(err)
	}
	return follow(ctx, client, jobID, out, func() (*moviolav1.JobEvent, error) {
		response, err := stream.Recv()
		return response.GetEvent(), err
	})
}

// follow prints a job's events (next is Generate's or WatchJob's stream) until the terminal one.
// Interrupted, it cancels the job; completed, with out set, it saves the video.
func follow(ctx context.Context, client moviolav1.GenerationServiceClient, jobID string, out string, next func() (*moviolav1.JobEvent, error)) int {
	for {
		event, err := next()
		if err == io.EOF {
			return 0
		}
		if err != nil {
			if ctx.Err() != nil && jobID != "" {
				return cancel(ctx, client, jobID)
			}
			return failed(err)
		}
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
		return failed(err)
	}
	partial := out + ".part"
	file, err := os.Create(partial)
	if err != nil {
		return failed(err)
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
			return failed(err)
		}
		n, err := file.Write(response.GetData())
		written += n
		if err != nil {
			file.Close()
			return failed(err)
		}
	}
	if err := file.Close(); err != nil {
		return failed(err)
	}
	if err := os.Rename(partial, out); err != nil {
		return failed(err)
	}
	fmt.Printf("saved %s (%d bytes)\n", out, written)
	return 0
}

// failed prints why a call failed and returns the exit code: for a refused call, its gRPC status,
// as "rpc error: code = InvalidArgument desc = FIELD: REASON".
func failed(err error) int {
	fmt.Fprintln(os.Stderr, "error:", err)
	return 1
}
