package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"sessiond/admin"
)

// runHashPassword reads one password (the first line of stdin) and prints
// its argon2id hash, which admin-users accept in place of the password.
func runHashPassword(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if args[0] == "--help" || args[0] == "-h" {
			fmt.Fprint(stdout, "Usage: sessiond hash-password < password-file\n\n"+
				"Reads a password from the first line of stdin and prints its argon2id hash,\n"+
				"to put in the configuration's admin-users in place of the password.\n")
			return 0
		}
		fmt.Fprintf(stderr, "sessiond hash-password: unexpected argument %q (the password is read from stdin)\n", args[0])
		return 2
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		fmt.Fprintf(stderr, "sessiond hash-password: %v\n", err)
		return 1
	}
	hash, err := admin.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		fmt.Fprintf(stderr, "sessiond hash-password: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, hash)
	return 0
}
