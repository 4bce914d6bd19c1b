// go_client.go: builds reference LLB graphs with BuildKit's own Go client (client/llb from the
// v0.11.6 source tarball, vendored dependencies) and writes the marshalled Definition to stdout.
// llb_go_compare.py builds it inside the extracted tarball and compares its output byte for byte
// with llb_go_graphs, which builds the same graphs with kiln's builder.
package main

import (
	"context"
	"os"

	"github.com/moby/buildkit/client/llb"
)

func graph(name string) llb.State {
	switch name {
	case "hello":
		return llb.Image("alpine").Run(
			llb.Args([]string{"/bin/sh", "-c", "echo hello > /hello"}),
			llb.AddEnv("PATH", "/usr/bin:/bin"), llb.WithCustomName("RUN echo")).Root()
	case "mounts":
		img := llb.Image("busybox:1.36")
		ctx := llb.Local("context", llb.IncludePatterns([]string{"*.go", "a<b"}),
			llb.SharedKeyHint("context"))
		run := img.Run(llb.Args([]string{"make"}), llb.Dir("/src"), llb.User("builder"),
			llb.Network(llb.NetModeHost), llb.AddSecret("/run/secrets/tok", llb.SecretID("tok")))
		src := run.AddMount("/src", ctx, llb.SourcePath("/sub"))
		run.AddMount("/ro", ctx, llb.Readonly)
		run.AddMount("/cache", llb.Scratch(),
			llb.AsPersistentCacheDir("gocache", llb.CacheMountLocked))
		run.AddMount("/tmp", llb.Scratch(), llb.Tmpfs(llb.TmpfsSize(64<<20)))
		return llb.Diff(img, llb.Merge([]llb.State{src, run.Root()}))
	case "files":
		img := llb.Image("golang:1.22")
		ctx := llb.Local("context")
		f := llb.Mkdir("/app", 0755, llb.WithParents(true), llb.WithUser("app")).
			Mkfile("/app/hello.txt", 0644, []byte("hello, world\n")).
			Copy(ctx, "/", "/app/src/", &llb.CopyInfo{CreateDestPath: true, AllowWildcard: true}).
			Rm("/app/*.tmp", llb.WithAllowNotFound(true), llb.WithAllowWildcard(true))
		return img.File(f)
	case "git":
		return llb.Git("https://github.com/moby/buildkit.git", "v0.11.6", llb.KeepGitDir())
	}
	panic("unknown graph " + name)
}

func main() {
	def, err := graph(os.Args[1]).Marshal(context.TODO(), llb.LinuxAmd64,
		llb.LocalUniqueID("kiln-fixed-unique-id"))
	if err != nil {
		panic(err)
	}
	if err := llb.WriteTo(def, os.Stdout); err != nil {
		panic(err)
	}
}
