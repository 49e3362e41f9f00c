"""`taxifare completion bash`: a bash completion script, generated from the command line's own parser.

Why a generated script and not argcomplete: argcomplete runs `taxifare` (Python, and the whole
parser with its pipeline settings) at every TAB, about half a second here; this script is plain
bash, written once from the same parser, so it knows every command, option and choice and
answers at once. It completes run ids from the runs root's folders (`--runs-root` if given on the
line, else ./runs) and versions from the registry's (`--registry`, else ./runs/registry). After
an upgrade that adds commands, generate it again.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator

# What a positional argument is, by its metavar: what to offer for it.
POSITIONALS = {"RUN_ID": "run", "VERSION": "version"}

SCRIPT = r"""
_taxifare_value() {  # the value given on the line to option $1, if any
    local i
    for ((i = 1; i < COMP_CWORD; i++)); do
        [[ ${COMP_WORDS[i]} == "$1" ]] && { echo "${COMP_WORDS[i + 1]}"; return; }
        [[ ${COMP_WORDS[i]} == "$1="* ]] && { echo "${COMP_WORDS[i]#*=}"; return; }
    done
}

_taxifare() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} path=taxifare i w
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        [[ $w == -* ]] && continue
        [[ " ${_taxifare_values[$path]} " == *" ${COMP_WORDS[i - 1]} "* ]] && continue
        [[ " ${_taxifare_commands[$path]} " == *" $w "* ]] && path="$path $w"
    done
    if [[ $prev == -* && " ${_taxifare_values[$path]} " == *" $prev "* ]]; then
        if [[ -n ${_taxifare_choices["$path|$prev"]+x} ]]; then
            mapfile -t COMPREPLY < <(compgen -W "${_taxifare_choices["$path|$prev"]}" -- "$cur")
        else
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        fi
        return
    fi
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "${_taxifare_options[$path]}" -- "$cur")
    elif [[ -n ${_taxifare_commands[$path]} ]]; then
        mapfile -t COMPREPLY < <(compgen -W "${_taxifare_commands[$path]}" -- "$cur")
    elif [[ -n ${_taxifare_choices["$path|"]+x} ]]; then
        mapfile -t COMPREPLY < <(compgen -W "${_taxifare_choices["$path|"]}" -- "$cur")
    elif [[ ${_taxifare_positional[$path]} == run ]]; then
        local root runs; root=$(_taxifare_value --runs-root); root=${root:-runs}
        runs=$(command ls "$root" 2>/dev/null | grep -E '^[0-9]{8}-[0-9]{6}-')
        mapfile -t COMPREPLY < <(compgen -W "latest $runs" -- "$cur")
    elif [[ ${_taxifare_positional[$path]} == version ]]; then
        local reg versions; reg=$(_taxifare_value --registry); reg=${reg:-runs/registry}
        versions=$(command ls "$reg/versions" 2>/dev/null | grep -E '^v[0-9]+$')
        mapfile -t COMPREPLY < <(compgen -W "champion latest $versions" -- "$cur")
    else
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
}
complete -F _taxifare taxifare
"""


def _walk(parser: argparse.ArgumentParser, path: str = "taxifare") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")


def _entries(path: str, parser: argparse.ArgumentParser) -> list[str]:
    """The bash assignments that describe one (sub)command."""
    key = shlex.quote(path)
    options: list[str] = []
    values: list[str] = []
    commands: list[str] = []
    lines: list[str] = []
    positional = ""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands += list(action.choices)
        elif action.option_strings:
            options += action.option_strings
            if action.nargs != 0:
                values += action.option_strings
                if action.choices:
                    words = " ".join(str(c) for c in action.choices)
                    lines += [f"_taxifare_choices[{shlex.quote(f'{path}|{o}')}]={shlex.quote(words)}"
                              for o in action.option_strings]  # fmt: skip
        elif action.choices:
            lines.append(
                f"_taxifare_choices[{shlex.quote(path + '|')}]={shlex.quote(' '.join(map(str, action.choices)))}"
            )
        elif isinstance(action.metavar, str):
            positional = POSITIONALS.get(action.metavar, positional)
    lines += [
        f"_taxifare_options[{key}]={shlex.quote(' '.join(options))}",
        f"_taxifare_values[{key}]={shlex.quote(' '.join(values))}",
        f"_taxifare_commands[{key}]={shlex.quote(' '.join(commands))}",
        f"_taxifare_positional[{key}]={shlex.quote(positional)}",
    ]
    return lines


def bash(parser: argparse.ArgumentParser) -> str:
    head = [
        "# bash completion for taxifare, generated by `taxifare completion bash`.",
        '# Use it with:  eval "$(taxifare completion bash)"  (e.g. in ~/.bashrc), or save it once:',
        "#   taxifare completion bash > ~/.local/share/bash-completion/completions/taxifare",
        "declare -gA _taxifare_options _taxifare_values _taxifare_commands _taxifare_positional _taxifare_choices",
    ]
    body = [line for path, sub in _walk(parser) for line in _entries(path, sub)]
    return "\n".join(head + body) + SCRIPT


def _cmd_completion(args: argparse.Namespace) -> int:
    print(bash(args.root_parser), end="")  # the whole command line's parser (taxifare.cli.build_parser)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "completion",
        help='print a shell completion script: eval "$(taxifare completion bash)"',
        description=(__doc__ or "").split("\n\n")[1],
    )
    p.add_argument("shell", choices=("bash",), help="the shell (bash 4 or newer)")
    p.set_defaults(handler=_cmd_completion)
