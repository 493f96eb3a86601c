package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/volt-cli/volt/engine/sign"
)

// ErrUnreachable wraps failures to reach the repository.
var ErrUnreachable = errors.New("repository unreachable")

// ErrUnsigned means a commit is not signed, or not by a trusted key, and
// signed commits are required.
var ErrUnsigned = errors.New("commit signature not trusted")

// SignatureNamespace is the SSHSIG namespace git signs commits in.
const SignatureNamespace = "git"

// auth returns the transport credentials of a source.
func (s *Source) auth() (transport.AuthMethod, error) {
	u, err := url.Parse(s.Repo)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "https", "http":
		if s.CredentialsFile == "" {
			return nil, nil
		}
		b, err := os.ReadFile(s.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		line := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
		if line == "" {
			return nil, fmt.Errorf("credentials file %s is empty: want USER:PASSWORD or a token", s.CredentialsFile)
		}
		if user, pass, ok := strings.Cut(line, ":"); ok {
			return &githttp.BasicAuth{Username: user, Password: pass}, nil
		}
		// A bare token: GitHub, GitLab and Gitea take it as the password of any user name.
		return &githttp.BasicAuth{Username: "x-access-token", Password: line}, nil
	case "ssh":
		user := u.User.Username()
		if user == "" {
			user = "git"
		}
		if s.KnownHosts == "" {
			return nil, errors.New("ssh:// needs a known_hosts file (--known-hosts)")
		}
		cb, err := gitssh.NewKnownHostsCallback(s.KnownHosts)
		if err != nil {
			return nil, fmt.Errorf("known_hosts %s: %w", s.KnownHosts, err)
		}
		var am *gitssh.PublicKeys
		if s.SSHKey != "" {
			am, err = gitssh.NewPublicKeysFromFile(user, s.SSHKey, "")
			if err != nil {
				return nil, fmt.Errorf("ssh key %s: %w", s.SSHKey, err)
			}
		} else {
			return nil, errors.New("ssh:// needs a private key (--ssh-key)")
		}
		am.HostKeyCallback = cb
		return am, nil
	}
	return nil, nil
}

// mirror opens (or creates) the source's bare local mirror.
func (st *Store) mirror(s *Source) (*git.Repository, error) {
	dir := filepath.Join(st.SourceDir(s.Name), "mirror")
	r, err := git.PlainOpen(dir)
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, git.ErrRepositoryNotExists) {
		return nil, fmt.Errorf("mirror %s: %w", dir, err)
	}
	r, err = git.PlainInit(dir, true)
	if err != nil {
		return nil, fmt.Errorf("mirror %s: %w", dir, err)
	}
	if _, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{s.Repo}}); err != nil {
		return nil, err
	}
	return r, nil
}

func (st *Store) resetMirror(s *Source) (*git.Repository, error) {
	if err := os.RemoveAll(filepath.Join(st.SourceDir(s.Name), "mirror")); err != nil {
		return nil, err
	}
	return st.mirror(s)
}

// remoteHead asks the repository for the branch head (an ls-remote: the
// only traffic of an idle source).
func (st *Store) remoteHead(ctx context.Context, s *Source, auth transport.AuthMethod) (plumbing.Hash, error) {
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{s.Repo}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: auth})
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("%w: %s: %v", ErrUnreachable, s.Repo, err)
	}
	want := plumbing.NewBranchReferenceName(s.Branch)
	for _, r := range refs {
		if r.Name() == want && r.Type() == plumbing.HashReference {
			return r.Hash(), nil
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("%s has no branch %q", s.Repo, s.Branch)
}

// fetch brings commit (the branch head) into the mirror with a shallow
// fetch. A force-pushed branch is followed (the refspec forces updates).
func (st *Store) fetch(ctx context.Context, s *Source, auth transport.AuthMethod, head plumbing.Hash) (*git.Repository, *object.Commit, error) {
	r, err := st.mirror(s)
	if err != nil {
		return nil, nil, err
	}
	if c, err := r.CommitObject(head); err == nil {
		return r, c, nil
	}
	spec := config.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/heads/%s", s.Branch, s.Branch))
	do := func(r *git.Repository) error {
		err := r.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RemoteURL: s.Repo, RefSpecs: []config.RefSpec{spec}, Depth: 1, Auth: auth, Force: true, Tags: git.NoTags})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			return err
		}
		return nil
	}
	if err := do(r); err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		// A shallow mirror can confuse an incremental fetch (a rewound
		// branch, a changed URL): start the mirror afresh once.
		if r, err = st.resetMirror(s); err != nil {
			return nil, nil, err
		}
		if err := do(r); err != nil {
			return nil, nil, fmt.Errorf("%w: fetch %s: %v", ErrUnreachable, s.Repo, err)
		}
	}
	c, err := r.CommitObject(head)
	if err != nil {
		// The branch moved between ls-remote and fetch: take what was fetched.
		ref, rerr := r.Reference(plumbing.NewBranchReferenceName(s.Branch), true)
		if rerr != nil {
			return nil, nil, fmt.Errorf("fetch %s: commit %s: %w", s.Repo, head, err)
		}
		if c, err = r.CommitObject(ref.Hash()); err != nil {
			return nil, nil, fmt.Errorf("fetch %s: commit %s: %w", s.Repo, ref.Hash(), err)
		}
	}
	return r, c, nil
}

// extract writes the commit's tree under dir: regular files, executables
// and symlinks that stay inside the tree. Submodules are not followed.
func extract(c *object.Commit, dir string) error {
	tree, err := c.Tree()
	if err != nil {
		return fmt.Errorf("commit %s: tree: %w", c.Hash, err)
	}
	return tree.Files().ForEach(func(f *object.File) error {
		if !filepath.IsLocal(f.Name) {
			return fmt.Errorf("commit %s: path %q leaves the tree", c.Hash, f.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		switch f.Mode {
		case filemode.Symlink:
			target, err := f.Contents()
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) || !filepath.IsLocal(filepath.Join(filepath.Dir(f.Name), target)) {
				return fmt.Errorf("commit %s: symlink %s points outside the tree (%s)", c.Hash, f.Name, target)
			}
			return os.Symlink(target, dst)
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			mode := os.FileMode(0o644)
			if f.Mode == filemode.Executable {
				mode = 0o755
			}
			rd, err := f.Reader()
			if err != nil {
				return err
			}
			defer rd.Close()
			out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, rd); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		}
		return nil // submodules and other modes are skipped
	})
}

// VerifyCommit checks that c carries an SSH signature (git's gpg.format
// ssh) by a key ts trusts for namespace "git", and returns the signer.
func VerifyCommit(c *object.Commit, ts *sign.TrustStore) (*sign.Signature, error) {
	if c.PGPSignature == "" {
		return nil, fmt.Errorf("%w: commit %s is not signed", ErrUnsigned, c.Hash.String()[:12])
	}
	if !strings.Contains(c.PGPSignature, "BEGIN SSH SIGNATURE") {
		return nil, fmt.Errorf("%w: commit %s carries a non-SSH (OpenPGP or X.509) signature; Volt checks SSH signatures (git config gpg.format ssh)", ErrUnsigned, c.Hash.String()[:12])
	}
	obj := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(obj); err != nil {
		return nil, err
	}
	rd, err := obj.Reader()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, err
	}
	who, err := ts.VerifyNamespace(data, []byte(c.PGPSignature), SignatureNamespace)
	if err != nil {
		return nil, fmt.Errorf("%w: commit %s: %v", ErrUnsigned, c.Hash.String()[:12], err)
	}
	return who, nil
}
