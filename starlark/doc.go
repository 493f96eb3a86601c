// Package starlark is Volt's recipe host: it evaluates Starlark recipes
// (volt.star, RECIPES.md) hermetically and returns the Plan they declare.
//
// It is the only package that imports go.starlark.net. Evaluation reads
// recipe sources under the recipe root, the embedded @volt// standard
// library, and stats and hashes declared input files; it sees no
// environment, clock, network or randomness. Every recipe error comes back
// as a *Diagnostic positioned at file:line:col.
package starlark
