package conditions

import (
	"fmt"
	"regexp"

	"github.com/jmespath-community/go-jmespath/pkg/parsing"
	"github.com/jmespath-community/go-jmespath/pkg/util"
)

// compileExpression parses a JMESPath expression with jmespath-community's parser and converts
// its AST, resolving functions (unknown names and wrong argument counts fail here) and
// precompiling literal regular expressions.
func compileExpression(src string) (*expression, error) {
	ast, err := parsing.NewParser().Parse(src)
	if err != nil {
		return nil, err
	}
	n, err := convert(ast)
	if err != nil {
		return nil, err
	}
	return &expression{src: src, root: n}, nil
}

func convert(a parsing.ASTNode) (*node, error) {
	kids := make([]*node, 0, len(a.Children))
	n := &node{}
	switch a.NodeType {
	case parsing.ASTField:
		n.kind, n.name = nField, a.Value.(string)
	case parsing.ASTSubexpression, parsing.ASTIndexExpression:
		n.kind = nSub
	case parsing.ASTIndex:
		n.kind, n.index = nIndex, a.Value.(int)
	case parsing.ASTSlice:
		n.kind, n.slice = nSlice, util.MakeSliceParams(a.Value.([]*int))
	case parsing.ASTProjection:
		n.kind = nProjection
		first := a.Children[0]
		n.allowString = first.NodeType == parsing.ASTIndexExpression && len(first.Children) > 1 &&
			first.Children[1].NodeType == parsing.ASTSlice
	case parsing.ASTFilterProjection:
		n.kind = nFilter
	case parsing.ASTFlatten:
		n.kind = nFlatten
	case parsing.ASTValueProjection:
		n.kind = nValueProjection
	case parsing.ASTIdentity, parsing.ASTCurrentNode:
		n.kind = nCurrent
	case parsing.ASTRootNode:
		n.kind = nRoot
	case parsing.ASTLiteral:
		n.kind, n.lit = nLiteral, a.Value
	case parsing.ASTFunctionExpression:
		n.kind, n.name = nFunction, a.Value.(string)
		fn, ok := functionTable[n.name]
		if !ok {
			return nil, fmt.Errorf("unknown function: %s()", n.name)
		}
		if err := fn.checkArity(len(a.Children)); err != nil {
			return nil, err
		}
		n.fn = fn
	case parsing.ASTExpRef:
		n.kind = nExpRef
	case parsing.ASTOrExpression:
		n.kind = nOr
	case parsing.ASTAndExpression:
		n.kind = nAnd
	case parsing.ASTNotExpression:
		n.kind = nNot
	case parsing.ASTComparator:
		n.kind, n.tok = nComparator, a.Value.(parsing.TokType)
	case parsing.ASTArithmeticExpression:
		n.kind, n.tok = nArithmetic, a.Value.(parsing.TokType)
	case parsing.ASTArithmeticUnaryExpression:
		n.kind, n.tok = nUnary, a.Value.(parsing.TokType)
	case parsing.ASTPipe:
		n.kind = nPipe
	case parsing.ASTMultiSelectList:
		n.kind = nList
	case parsing.ASTMultiSelectHash:
		n.kind = nHash
		for _, kv := range a.Children {
			n.keys = append(n.keys, kv.Value.(string))
			k, err := convert(kv.Children[0])
			if err != nil {
				return nil, err
			}
			kids = append(kids, k)
		}
		n.kids = kids
		return n, nil
	case parsing.ASTLetExpression:
		n.kind = nLet
		for _, b := range a.Children[0].Children {
			if b.NodeType != parsing.ASTBinding || len(b.Children) != 2 || b.Children[0].NodeType != parsing.ASTVariable {
				return nil, fmt.Errorf("invalid let binding %s", b.NodeType)
			}
			n.keys = append(n.keys, b.Children[0].Value.(string))
			k, err := convert(b.Children[1])
			if err != nil {
				return nil, err
			}
			kids = append(kids, k)
		}
		body, err := convert(a.Children[1])
		if err != nil {
			return nil, err
		}
		n.kids = append(kids, body)
		return n, nil
	case parsing.ASTVariable:
		n.kind, n.name = nVariable, a.Value.(string)
	default:
		return nil, fmt.Errorf("unsupported JMESPath construct %s", a.NodeType)
	}
	for _, c := range a.Children {
		k, err := convert(c)
		if err != nil {
			return nil, err
		}
		kids = append(kids, k)
	}
	n.kids = kids
	if n.kind == nFunction && n.fn.regex && len(kids) > 0 && kids[0].kind == nLiteral {
		if p, ok := kids[0].lit.(string); ok {
			re, err := regexp.Compile(p)
			if err != nil {
				return nil, fmt.Errorf("JMESPath function '%s': %w", n.name, err)
			}
			n.re = re
		}
	}
	return n, nil
}
