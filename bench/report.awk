# Turns bench/run.sh's TSV into Markdown tables: medians per scenario and target, ratios, idle memory.
# usage: awk -F'\t' -v reps=3 -v secs=10 -v pool=20 -f report.awk bench-results.tsv

function na(x) { return x == "" || x == "NA" }

# Median of the numeric values in the space-separated list s ("NA" when there are none).
function median(s,    n, v, i, j, t) {
  n = split(s, v, " ")
  if (n == 0) return "NA"
  for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j] + 0 < v[j - 1] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
  return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}

function maximum(s,    n, v, i, m) {
  n = split(s, v, " ")
  if (n == 0) return "NA"
  m = v[1]; for (i = 2; i <= n; i++) if (v[i] + 0 > m + 0) m = v[i]
  return m
}

function add(arr, k, x) { if (!na(x)) arr[k] = arr[k] (arr[k] == "" ? "" : " ") x }
function fmt(x, f) { return na(x) ? "n/a" : sprintf(f, x) }
function ratio(a, b) { return (na(a) || na(b) || b + 0 == 0) ? "n/a" : sprintf("%.2f", a / b) }

function ran_floor(s, t) { return (s SUBSEP t) in ran && !((s SUBSEP t) in skipped) }

function describe(s) {
  if (s == "S1") return "S1 `-S`"
  if (s == "S2") return "S2 `-S -C` (login per tx)"
  if (s == "S3") return "S3 `-S`, pool " pool
  if (s == "S4") return "S4 `-S -M extended`"
  if (s == "S5") return "S5 `-S -M prepared`"
  if (s == "S6") return "S6 TPC-B-like"
  return s
}

function label(s, t, args) {
  if (t == "pgbouncer" && s == "S5" && args ~ /-M simple/) return "PgBouncer (`-M simple`)"
  if (t == "pgbouncer") return "PgBouncer"
  if (t == "pgmux-nometrics") return "pgmux, metrics off"
  if (t == "floor") return "floor relay (no pooling)"
  if (t == "floor-mt") return "floor relay, a thread per pgmux worker"
  return t
}

NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }

$col["kind"] == "run" {
  s = $col["scenario"]; t = $col["target"]; k = s SUBSEP t
  if (!(s in seen_s)) { seen_s[s] = 1; order[++ns] = s }
  ran[k] = 1
  args[k] = $col["pgbench_args"]
  if (!na($col["clients"])) clients[s] = $col["clients"]
  add(tps, k, $col["tps"]); add(p50, k, $col["p50_ms"]); add(p99, k, $col["p99_ms"])
  add(cpu, k, $col["cpu_s_per_10k_tx"]); add(peak, k, $col["peak_rss_kb"])
  if (!na($col["failed"])) failed[k] += $col["failed"]
  if (!na($col["errors"])) errors[k] += $col["errors"]
  if (!na($col["aborted_clients"])) aborted[k] += $col["aborted_clients"]
  if ($col["note"] != "") {
    if ($col["note"] ~ /^n\/a: /) skipped[k] = substr($col["note"], 6)
    else {
      nk = s " " t ": " $col["note"]
      if (!(nk in note_reps)) notes[++nn] = nk
      note_reps[nk] = note_reps[nk] (note_reps[nk] == "" ? "" : ",") $col["rep"]
    }
  }
}

$col["kind"] == "idle" {
  idle[++ni] = $col["clients"] "\t" $col["target"] "\t" $col["scenario"] "\t" $col["idle_rss_growth_kb"] "\t" \
               $col["bytes_per_idle_client"] "\t" $col["note"]
}

END {
  printf "### Throughput, latency and pooler cost (median of %s x %s s; pool %s)\n\n", reps, secs, pool
  print "| scenario | clients | target | TPS | p50 ms | p99 ms | pooler CPU s / 10k tx | pooler peak RSS MiB | failed tx | aborted clients | error lines | pgmux / PgBouncer | pgmux / direct |"
  print "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  ntg = split("direct pgbouncer pgmux pgmux-nometrics floor floor-mt", tg, " ")
  for (i = 1; i <= ns; i++) {
    s = order[i]
    for (j = 1; j <= ntg; j++) {
      t = tg[j]; k = s SUBSEP t
      if (!(k in ran)) continue
      if (k in skipped) {
        printf "| %s | %s | %s | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | | |\n", describe(s), clients[s], label(s, t, args[k])
        continue
      }
      m[k] = median(tps[k])
      r1 = r2 = ""
      if (t == "pgmux" && aborted[k] > 0) {
        r1 = r2 = "fails"
      } else if (t == "pgmux") {
        r1 = ratio(m[k], m[s SUBSEP "pgbouncer"])
        if (s == "S5" && args[s SUBSEP "pgbouncer"] ~ /-M simple/ && r1 != "n/a") r1 = r1 " (vs simple)"
        r2 = ratio(m[k], m[s SUBSEP "direct"])
      }
      pk = maximum(peak[k])
      if (aborted[k] > 0) aborted_rows = 1
      printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", describe(s), clients[s], label(s, t, args[k]),
        fmt(m[k], "%.0f") (aborted[k] > 0 ? " *" : ""), fmt(median(p50[k]), "%.2f"), fmt(median(p99[k]), "%.2f"), fmt(median(cpu[k]), "%.2f"),
        (na(pk) ? "n/a" : sprintf("%.1f", pk / 1024)), (k in failed ? failed[k] : "n/a"), aborted[k] + 0, errors[k] + 0, r1, r2
    }
  }
  print ""
  print "S2 latency is the time between one client's consecutive transactions: login + transaction + logout."
  if (aborted_rows) print "\\* pgbench clients aborted on errors: the TPS counts only what ran before they did (see the notes)."
  for (k in skipped) { split(k, p, SUBSEP); print "n/a for " p[1] " " p[2] ": " skipped[k] "." }
  for (i = 1; i <= nn; i++) print "- " notes[i] " (rep " note_reps[notes[i]] ")"

  # The floor relay: the least CPU any proxy spends per transaction here, and each pooler's CPU over it.
  floor_rows = 0
  for (i = 1; i <= ns; i++) if (ran_floor(order[i], "floor") || ran_floor(order[i], "floor-mt")) floor_rows++
  if (floor_rows > 0) {
    print ""
    print "### Pooler CPU against the floor (the cheapest relay: one recv and one send per message, no pooling)"
    print ""
    print "| scenario | floor CPU s / 10k tx | floor, a thread per worker | PgBouncer | pgmux | PgBouncer / floor | pgmux / floor | pgmux / floor with its threads |"
    print "|---|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= ns; i++) {
      s = order[i]
      if (!ran_floor(s, "floor") && !ran_floor(s, "floor-mt")) continue
      fl = median(cpu[s SUBSEP "floor"]); fm = median(cpu[s SUBSEP "floor-mt"])
      b = median(cpu[s SUBSEP "pgbouncer"]); x = median(cpu[s SUBSEP "pgmux"])
      vs = (s == "S5" && args[s SUBSEP "pgbouncer"] ~ /-M simple/) ? " (vs simple)" : ""
      printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", describe(s), fmt(fl, "%.3f"), fmt(fm, "%.3f"), fmt(b, "%.3f"),
        fmt(x, "%.3f"), ratio(b, fl) (ratio(b, fl) == "n/a" ? "" : vs), ratio(x, fl), ratio(x, fm)
    }
  }

  # METRICS=1: what counting costs, as the ratio of the two pgmux runs of each scenario.
  metrics_rows = 0
  for (i = 1; i <= ns; i++) if ((order[i] SUBSEP "pgmux-nometrics") in ran && (order[i] SUBSEP "pgmux") in ran) metrics_rows++
  if (metrics_rows > 0) {
    print ""
    print "### pgmux with metrics on vs off (metrics.enabled: false)"
    print ""
    print "| scenario | TPS on | TPS off | on / off | CPU s / 10k tx on | CPU s / 10k tx off |"
    print "|---|---:|---:|---:|---:|---:|"
    for (i = 1; i <= ns; i++) {
      s = order[i]; on = s SUBSEP "pgmux"; off = s SUBSEP "pgmux-nometrics"
      if (!(on in ran) || !(off in ran)) continue
      printf "| %s | %s | %s | %s | %s | %s |\n", describe(s), fmt(median(tps[on]), "%.0f"), fmt(median(tps[off]), "%.0f"),
        ratio(median(tps[on]), median(tps[off])), fmt(median(cpu[on]), "%.2f"), fmt(median(cpu[off]), "%.2f")
    }
  }

  if (ni > 0) {
    print ""
    print "### Idle memory (fresh pooler; VmRSS growth over established idle clients)"
    print ""
    print "| idle clients asked | pooler | established | RSS growth KiB | bytes per idle client | note |"
    print "|---:|---|---:|---:|---:|---|"
    for (i = 1; i <= ni; i++) {
      split(idle[i], f, "\t")
      sub(/^idle-/, "", f[3])
      printf "| %s | %s | %s | %s | %s | %s |\n", f[3], (f[2] == "pgbouncer" ? "PgBouncer" : f[2]),
        (na(f[1]) ? "n/a" : f[1]), (na(f[4]) ? "n/a" : f[4]), (na(f[5]) ? "n/a" : f[5]), f[6]
    }
  }
}
