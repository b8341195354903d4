"""Directives: time-bounded, scoped restrictions issued by an authority (PRODUCT.md §3, §4.2).

`model` holds the document (parse, validate) and how it compiles into a policy rule;
storage and propagation live beside it.
"""

from harbourgate.directives.model import Directive, DirectiveError, load_directive_file

__all__ = ["Directive", "DirectiveError", "load_directive_file"]
