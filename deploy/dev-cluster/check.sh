#!/usr/bin/env bash
# check.sh -- smoke test of the lxr dev cluster, through ssh as user lxr:
#   ssh key login; Slurm array (sbatch, squeue -t all, sacct); Slurm partition multi (2+
#   nodes, a 2-node x 2-task srun, a heterogeneous job); SGE array (qsub, qstat -xml,
#   qacct); SGE PE mpi (4 slots, $PE_HOSTFILE); podman run of the test image as lxr;
#   PostgreSQL select 1; prometheus binaries.
# One line per check, last line "N passed, M failed"; exit status 0 iff all passed.
set -uo pipefail
SSH=(ssh -F /var/lib/lxr-dev/ssh_config lxr-dev)
S() { "${SSH[@]}" "$@"; }
pass=0; fail=0
ok()  { echo "ok   $*"; pass=$((pass+1)); }
bad() { echo "FAIL $* (check.sh line ${BASH_LINENO[0]})"; fail=$((fail+1)); }
t0=$(date +%s)

[ "$(S whoami 2>&1)" = lxr ] && ok "ssh key login as lxr" || bad "ssh key login as lxr"

# ---- Slurm: array of 4, task 2 exits 5
A=$(S "sbatch --parsable -J lxr-check --comment=lxr-check --array=0-3 -o /dev/null --wrap 'sleep 1; [ \$SLURM_ARRAY_TASK_ID = 2 ] && exit 5; exit 0'" 2>&1)
[[ "$A" =~ ^[0-9]+$ ]] && ok "sbatch --array -> $A" || bad "sbatch --array: $A"
for _ in $(seq 120); do
  [ -z "$(S "squeue -h -r -j $A -t PD,R,CG,S -o %i" 2>/dev/null)" ] && break; sleep 0.5
done
st=$(S "squeue -h -r -t all -j $A -o '%i %T'" | sort | tr '\n' ',')
[ "$st" = "${A}_0 COMPLETED,${A}_1 COMPLETED,${A}_2 FAILED,${A}_3 COMPLETED," ] \
  && ok "squeue -t all: $st" || bad "squeue -t all: $st"
sa=""
for _ in $(seq 30); do   # slurmctld sends records to slurmdbd asynchronously
  sa=$(S "sacct -n -X -P -j $A -o JobID,State,ExitCode" | sort | tr '\n' ',')
  [ "$sa" = "${A}_0|COMPLETED|0:0,${A}_1|COMPLETED|0:0,${A}_2|FAILED|5:0,${A}_3|COMPLETED|0:0," ] && break
  sleep 0.5
done
[ "$sa" = "${A}_0|COMPLETED|0:0,${A}_1|COMPLETED|0:0,${A}_2|FAILED|5:0,${A}_3|COMPLETED|0:0," ] \
  && ok "sacct: $sa" || bad "sacct: $sa"

# ---- Slurm: several nodes; srun across 2 of them; a heterogeneous job
# job_out JOBID FILE: wait for the job to leave the queue, print its output file
job_out() {
  for _ in $(seq 120); do
    [ -z "$(S "squeue -h -j $1 -t PD,R,CG,S -o %i" 2>/dev/null)" ] && break; sleep 0.5
  done
  S "cat $2; rm -f $2"
}
nm=$(S "sinfo -h -p multi -o %D" 2>&1)
[[ "$nm" =~ ^[0-9]+$ ]] && [ "$nm" -ge 2 ] && ok "partition multi: $nm nodes" || bad "partition multi: $nm"
M=$(S "sbatch --parsable -J lxr-check -p multi -N 2 --ntasks-per-node=2 -c 1 -o lxr-check-multi.out --wrap 'srun --kill-on-bad-exit sh -c \"echo \\\$SLURMD_NODENAME \\\$SLURM_PROCID\"'" 2>&1)
if [[ "$M" =~ ^[0-9]+$ ]]; then
  out=$(job_out "$M" lxr-check-multi.out)
  ranks=$(echo "$out" | awk '{print $2}' | sort -n | tr '\n' ,)
  hosts=$(echo "$out" | awk '{print $1}' | sort -u | wc -l)
  [ "$ranks" = "0,1,2,3," ] && [ "$hosts" = 2 ] && ok "srun 2 nodes x 2 tasks: ranks $ranks on $hosts nodes" \
    || bad "srun 2 nodes x 2 tasks: $out"
else bad "sbatch -p multi -N 2: $M"; fi
H=$(S "printf '%s\n' '#!/bin/sh' '#SBATCH -J lxr-check -p multi -n 1 -o lxr-check-het.out' '#SBATCH hetjob' '#SBATCH -p multi -n 1' \
  'srun --het-group=0 sh -c \"echo 0 \\\$SLURMD_NODENAME\"; srun --het-group=1 sh -c \"echo 1 \\\$SLURMD_NODENAME\"' | sbatch --parsable" 2>&1)
if [[ "$H" =~ ^[0-9]+$ ]]; then
  comps=$(S "squeue -h -j $H -o %i" | sort | tr '\n' ,)
  out=$(job_out "$H" lxr-check-het.out)
  [ "$(echo "$out" | awk '{print $1}' | tr '\n' ,)" = "0,1," ] \
    && ok "hetjob $H (${comps:-gone}): $(echo "$out" | tr '\n' ' ')" || bad "hetjob $H: $out"
else bad "sbatch hetjob: $H"; fi

# ---- SGE: array of 3, task 2 exits 7
R=$(S "qsub -terse -N lxr-check -t 1-3 -o /dev/null -j y -b y 'sleep 1; [ \$SGE_TASK_ID = 2 ] && exit 7; exit 0'" 2>&1)
[[ "$R" =~ ^[0-9]+\.1-3:1$ ]] && ok "qsub -t -> $R" || bad "qsub -t: $R"
J=${R%%.*}
S "qstat -u lxr -xml" | grep -q '<job_info' && ok "qstat -xml" || bad "qstat -xml"
for _ in $(seq 120); do
  [ -z "$(S "qstat -u lxr | awk -v j=$J '\$1==j'")" ] && break; sleep 0.5
done
qa=""
for _ in $(seq 30); do
  qa=$(S "qacct -j $J 2>/dev/null | awk '/^taskid/{t=\$2} /^exit_status/{print t\":\"\$2}'" | sort | tr '\n' ',')
  [ "$qa" = "1:0,2:7,3:0," ] && break; sleep 0.5
done
[ "$qa" = "1:0,2:7,3:0," ] && ok "qacct exit codes: $qa" || bad "qacct: $qa"

# ---- SGE: PE mpi with 4 slots; $PE_HOSTFILE lists them
P=$(S "qsub -terse -N lxr-check -pe mpi 4 -o lxr-check-pe.out -j y -b y 'echo \$NSLOTS \$(awk \"{s+=\\\$2} END {print s}\" \$PE_HOSTFILE)'" 2>&1)
if [[ "$P" =~ ^[0-9]+$ ]]; then
  for _ in $(seq 120); do
    [ -z "$(S "qstat -u lxr | awk -v j=$P '\$1==j'")" ] && break; sleep 0.5
  done
  pe=$(S "cat lxr-check-pe.out; rm -f lxr-check-pe.out" 2>&1)
  [ "$pe" = "4 4" ] && ok "qsub -pe mpi 4: NSLOTS and \$PE_HOSTFILE slots = $pe" || bad "qsub -pe mpi 4: $pe"
else bad "qsub -pe mpi 4: $P"; fi

# ---- podman, rootless as lxr: the test image's os-release, not the host's
pm=$(S "podman run --rm --network=host localhost/lxr-test-python:latest sh -c 'grep ^VARIANT_ID= /etc/os-release; python3 -c \"print(1+1)\"'" 2>/dev/null | tr '\n' ' ')
[ "$pm" = "VARIANT_ID=lxr-test 2 " ] && ok "podman run localhost/lxr-test-python as lxr: $pm" || bad "podman run: $pm"

# ---- PostgreSQL (from the client side, as the tests connect)
r=$(PGPASSWORD=lxr psql -X -h 127.0.0.1 -p 5432 -U lxr -d lxr -tAc 'select 1' 2>&1)
[ "$r" = 1 ] && ok "psql select 1 as lxr" || bad "psql: $r"

# ---- prometheus package (prometheus-up.sh starts it)
[ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ] && ok "prometheus + promtool installed" \
  || bad "prometheus binaries missing"

echo "check took $(( $(date +%s) - t0 ))s"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
