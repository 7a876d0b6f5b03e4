// Package manifest reads YAML and JSON manifest files and directories into documents, each
// converted to JSON and labelled with its file, document index and starting line so that every
// later error can say exactly where the problem is. It knows nothing about policies or
// resources beyond the generic apiVersion/kind envelope and v1 Lists.
package manifest
