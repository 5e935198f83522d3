# bash completion for crl. Installed as share/bash-completion/completions/crl;
# or source it. It asks the crl being completed for its own lists, so it
# never falls behind the binary:
#   crl <TAB>                  the commands (crl --help)
#   crl CMD --<TAB>            CMD's options (crl CMD --help)
#   --task/--env/--tasks <TAB> task names (crl tasks)
#   --scenario <TAB>           scenario names (crl scenarios)
#   --method <TAB>             methods (crl train --help)
#   --status <TAB>             run statuses (crl runs)
#   --format <TAB>             the formats of crl runs and crl export-metrics
#   anything else              file names
_crl() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local crl=${COMP_WORDS[0]} words
    COMPREPLY=()
    if [ "$COMP_CWORD" -eq 1 ]; then
        words=$("$crl" --help 2>/dev/null | awk '/^commands:/ {f = 1; next} f && /^  [a-z]/ {print $1}')
        COMPREPLY=($(compgen -W "$words --help --version" -- "$cur"))
        return 0
    fi
    local cmd=${COMP_WORDS[1]}
    case $prev in
    --task | --env)
        words=$("$crl" tasks 2>/dev/null | awk 'NR > 1 {print $1}')
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return 0
        ;;
    --tasks)
        words=$("$crl" tasks 2>/dev/null | awk 'NR > 1 {print $1}')
        local head=${cur%,*} last=${cur##*,}
        if [ "$head" = "$cur" ]; then head=""; else head="$head,"; fi
        COMPREPLY=($(compgen -P "$head" -W "$words" -- "$last"))
        return 0
        ;;
    --scenario)
        words=$("$crl" scenarios 2>/dev/null | awk '/^[a-z0-9]/ {print $1}')
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return 0
        ;;
    --method)
        words=$("$crl" train --help 2>/dev/null |
            awk '/^methods/ {f = 1; next} f && /^  [a-z0-9]/ {print $1}')
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return 0
        ;;
    --status)
        COMPREPLY=($(compgen -W "running finished failed interrupted stale" -- "$cur"))
        return 0
        ;;
    --format)
        case $cmd in
        runs | report) words="table csv json" ;;
        export-metrics) words="csv tensorboard parquet" ;;
        *) words="" ;;
        esac
        if [ -n "$words" ]; then
            COMPREPLY=($(compgen -W "$words" -- "$cur"))
            return 0
        fi
        ;;
    esac
    if [[ $cur == -* ]]; then
        words=$("$crl" "$cmd" --help 2>/dev/null | grep -oE '^  (-[a-zA-Z], )?--[a-z0-9-]+' |
            grep -oE -- '--[a-z0-9-]+')
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
        return 0
    fi
    COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _crl crl
