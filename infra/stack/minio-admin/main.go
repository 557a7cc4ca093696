// minio-admin gives a MinIO user exactly one canned policy's rights: the local stack's way of
// handing the lake's jobs and readers their own S3 credentials (infra/s3-access.ts runs it).
//
//	minio-admin apply <endpoint> <policy-name> <policy-json-file> <user> <secret-file>
//	minio-admin revoke <endpoint> <policy-name> <user>
//
// apply creates or updates the canned policy, creates or updates the user with the secret read
// from <secret-file>, and attaches the policy to the user; revoke detaches the policy from the user
// and deletes it. Both are idempotent. The root credentials come from MINIO_ROOT_USER and
// MINIO_ROOT_PASSWORD, never from the command line, and so does no secret: argv is visible to
// every process on the machine.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const usage = `usage:
  minio-admin apply <endpoint> <policy-name> <policy-json-file> <user> <secret-file>
  minio-admin revoke <endpoint> <policy-name> <user>
The root credentials are read from MINIO_ROOT_USER and MINIO_ROOT_PASSWORD.`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "minio-admin: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("no command\n" + usage)
	}
	switch {
	case args[0] == "apply" && len(args) == 6:
		return withAdmin(args[1], func(ctx context.Context, admin *madmin.AdminClient) error {
			return apply(ctx, admin, args[2], args[3], args[4], args[5])
		})
	case args[0] == "revoke" && len(args) == 4:
		return withAdmin(args[1], func(ctx context.Context, admin *madmin.AdminClient) error {
			return revoke(ctx, admin, args[2], args[3])
		})
	default:
		return fmt.Errorf("unexpected arguments %q\n%s", args, usage)
	}
}

// withAdmin signs in to `endpoint` (http[s]://host:port) as root, with every call bounded in time.
func withAdmin(endpoint string, use func(context.Context, *madmin.AdminClient) error) error {
	rootUser, rootPassword := os.Getenv("MINIO_ROOT_USER"), os.Getenv("MINIO_ROOT_PASSWORD")
	if rootUser == "" || rootPassword == "" {
		return errors.New("MINIO_ROOT_USER and MINIO_ROOT_PASSWORD must be set")
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("endpoint %q: expected http://host:port or https://host:port", endpoint)
	}
	admin, err := madmin.NewWithOptions(u.Host, &madmin.Options{
		Creds:  credentials.NewStaticV4(rootUser, rootPassword, ""),
		Secure: u.Scheme == "https",
	})
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", endpoint, err)
	}
	admin.SetAppInfo("lakestream-minio-admin", "1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := use(ctx, admin); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s did not answer within 30 s: %w", endpoint, err)
		}
		return err
	}
	return nil
}

func apply(ctx context.Context, admin *madmin.AdminClient, policyName, policyFile, user, secretFile string) error {
	policy, err := os.ReadFile(policyFile)
	if err != nil {
		return fmt.Errorf("policy %s: %w", policyName, err)
	}
	raw, err := os.ReadFile(secretFile)
	if err != nil {
		return fmt.Errorf("user %s: %w", user, err)
	}
	secret := strings.TrimSpace(string(raw))
	if len(secret) < 8 {
		return fmt.Errorf("user %s: the secret in %s is shorter than the 8 characters MinIO requires", user, secretFile)
	}

	_, err = admin.InfoCannedPolicyV2(ctx, policyName)
	policyExisted := err == nil
	if err != nil && !isCode(err, "XMinioAdminNoSuchPolicy") {
		return fmt.Errorf("policy %s: %w", policyName, describe(err))
	}
	if err := admin.AddCannedPolicy(ctx, policyName, policy); err != nil {
		return fmt.Errorf("policy %s: %w", policyName, describe(err))
	}
	fmt.Printf("policy %s: %s\n", policyName, pick(policyExisted, "updated", "created"))

	info, err := admin.GetUserInfo(ctx, user)
	userExisted := err == nil
	if err != nil && !isCode(err, "XMinioAdminNoSuchUser") {
		return fmt.Errorf("user %s: %w", user, describe(err))
	}
	// updating a user keeps the policies attached to it
	if err := admin.SetUser(ctx, user, secret, madmin.AccountEnabled); err != nil {
		return fmt.Errorf("user %s: %w", user, describe(err))
	}
	fmt.Printf("user %s: %s\n", user, pick(userExisted, "updated (secret from "+secretFile+")", "created (secret from "+secretFile+")"))

	if userExisted && slices.Contains(policiesOf(info), policyName) {
		fmt.Printf("policy %s: already attached to %s\n", policyName, user)
		return nil
	}
	if _, err := admin.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{policyName}, User: user}); err != nil {
		return fmt.Errorf("attaching policy %s to %s: %w", policyName, user, describe(err))
	}
	fmt.Printf("policy %s: attached to %s\n", policyName, user)
	return nil
}

func revoke(ctx context.Context, admin *madmin.AdminClient, policyName, user string) error {
	info, err := admin.GetUserInfo(ctx, user)
	switch {
	case err == nil && slices.Contains(policiesOf(info), policyName):
		if _, err := admin.DetachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{policyName}, User: user}); err != nil {
			return fmt.Errorf("detaching policy %s from %s: %w", policyName, user, describe(err))
		}
		fmt.Printf("policy %s: detached from %s\n", policyName, user)
	case err == nil || isCode(err, "XMinioAdminNoSuchUser"):
		fmt.Printf("policy %s: not attached to %s\n", policyName, user)
	default:
		return fmt.Errorf("user %s: %w", user, describe(err))
	}

	if _, err := admin.InfoCannedPolicyV2(ctx, policyName); isCode(err, "XMinioAdminNoSuchPolicy") {
		fmt.Printf("policy %s: absent\n", policyName)
		return nil
	} else if err != nil {
		return fmt.Errorf("policy %s: %w", policyName, describe(err))
	}
	if err := admin.RemoveCannedPolicy(ctx, policyName); err != nil {
		return fmt.Errorf("deleting policy %s: %w", policyName, describe(err))
	}
	fmt.Printf("policy %s: deleted\n", policyName)
	return nil
}

// policiesOf lists the policies attached to a user (MinIO joins them with commas).
func policiesOf(info madmin.UserInfo) []string {
	var names []string
	for _, name := range strings.Split(info.PolicyName, ",") {
		if name = strings.TrimSpace(name); name != "" {
			names = append(names, name)
		}
	}
	return names
}

func isCode(err error, code string) bool {
	return err != nil && madmin.ToErrorResponse(err).Code == code
}

// describe adds MinIO's error code to its message, e.g. "The access key ID you provided does not
// exist in our records. (InvalidAccessKeyId)".
func describe(err error) error {
	if code := madmin.ToErrorResponse(err).Code; code != "" {
		return fmt.Errorf("%w (%s)", err, code)
	}
	return err
}

func pick(condition bool, yes, no string) string {
	if condition {
		return yes
	}
	return no
}
