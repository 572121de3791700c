"""Filter inputs drawn once per value and kept.

Django draws each widget through a template of its own (a select draws every option
through another), which cost a third of a list page around its rows. A filter input
holds only a handful of distinct values, so each is drawn once per (form, field,
value, errors) and kept, the least recently used dropped past a bound.
"""

import contextlib
from collections import OrderedDict
from collections.abc import Iterable

from django import forms
from django.utils.safestring import SafeString

LIMIT = 512
_DRAWN: OrderedDict[tuple, SafeString] = OrderedDict()


def drawn_inputs(form: forms.Form, names: Iterable[str]) -> dict[str, SafeString]:
    """The inputs of `form` named in `names`, as `{{ form.name }}` would draw them."""
    inputs = {}
    for name in names:
        field = form[name]
        value = field.value()
        # The type too: no value (an empty input) and the text "None" are drawn apart.
        key = (type(form), name, type(value), str(value), tuple(field.errors))
        html = _DRAWN.get(key)
        if html is not None:
            with contextlib.suppress(KeyError):  # dropped meanwhile by another thread
                _DRAWN.move_to_end(key)
        else:
            html = _DRAWN[key] = SafeString(str(field))
            while len(_DRAWN) > LIMIT:
                with contextlib.suppress(KeyError):  # emptied meanwhile by another thread
                    _DRAWN.popitem(last=False)
        inputs[name] = html
    return inputs
