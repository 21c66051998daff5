#!/bin/sh
# CLI tests of `mltrain JOB.yaml` (tests/train/CMakeLists.txt registers each case as
# cli.train.CASE): the Pylearn2 files of the conformance folder are copied UNCHANGED (only the
# renamed files get their original names back where another file refers to them) and run with
# PYLEARN2_DATA_PATH pointing at a folder whose mnist/ links to the Fashion-MNIST files, the
# %(name)s templates filled with small values. A file needing a component that is not
# registered yet (BGD, conv layers, TransformerDataset) is reported as skipped (exit 77) with
# the reason. Usage: cli_train.sh CASE MLTRAIN CONFORMANCE_DIR WORK_ROOT SOURCE_ROOT
set -u
CASE=$1
MLTRAIN=$2
CONF=$3
ROOT=$4
SRC=$5
FASHION=/usr/share/datasets/fashion-mnist

fail() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }

[ -e "$FASHION/train-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST not installed ($FASHION)"
DATA=$ROOT/data
mkdir -p "$DATA/mnist"
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz \
         t10k-labels-idx1-ubyte.gz; do
    ln -sf "$FASHION/$f" "$DATA/mnist/$f"
done
export PYLEARN2_DATA_PATH="$DATA"
unset MLTRAIN_DATA_PATH

# Cases of a chain share one folder (dae_l1 -> dae_l2 -> dae_mlp, mnist_pi -> continued).
case "$CASE" in
    dae_*) W=$ROOT/dae ;;
    maxout_mnist_pi*) W=$ROOT/maxout ;;
    *) W=$ROOT/$CASE; rm -rf "$W" ;;
esac
mkdir -p "$W"
cd "$W" || fail "cd $W"

conf() { # conf NAME [TARGET]: an unchanged copy of a conformance file
    [ -e "$CONF/$1" ] || skip "conformance file $CONF/$1 missing"
    cp "$CONF/$1" "$W/${2:-$1}" || fail "copy $1"
    chmod u+w "$W/${2:-$1}"
}

# run EXPECTED_RC JOB ARGS...: runs mltrain, output in $W/out.txt
run() {
    want=$1
    shift
    "$MLTRAIN" "$@" > "$W/out.txt" 2>&1
    rc=$?
    cat "$W/out.txt"
    [ "$rc" = "$want" ] || fail "mltrain $* exited with $rc (expected $want)"
}

# needs JOB ARGS...: skips when the dry run names a component that is not registered
needs() {
    "$MLTRAIN" "$@" --dry-run > "$W/dry.txt" 2>&1 && return 0
    cat "$W/dry.txt"
    if grep -q "unknown component" "$W/dry.txt"; then
        skip "$(grep -o "unknown component '[^']*'" "$W/dry.txt" | head -1) is not implemented yet"
    fi
    fail "dry run of $1 failed"
}

ckpt_epochs() { # prints the epochs_seen of a checkpoint (h5py)
    /usr/bin/python3 -c "import h5py,sys; f=h5py.File(sys.argv[1],'r'); print(int(f.attrs['train/epochs_seen']) if 'train/epochs_seen' in f.attrs else int(f['train/epochs_seen'][()]))" "$1" 2>/dev/null
}

MLP_PARAMS="--param train_stop=2000 --param valid_stop=51000 --param dim_h0=64 --param dim_h1=64 --param sparse_init_h1=15 --param max_epochs=2 --param save_path=$W"

case "$CASE" in
mlp_tutorial_part_3|mlp_tutorial_part_4)
    conf tutorials__multilayer_perceptron__$CASE.yaml job.yaml
    needs job.yaml $MLP_PARAMS
    run 0 job.yaml $MLP_PARAMS
    grep -q "epoch 2/2 done" "$W/out.txt" || fail "no epoch 2 record"
    grep -q "valid_y_misclass" "$W/out.txt" || fail "no valid_y_misclass channel"
    best=mlp_2_best.pkl
    [ "$CASE" = mlp_tutorial_part_4 ] && best=mlp_3_best.pkl
    [ -s "$W/$best" ] || fail "MonitorBasedSaveBest wrote no $best"
    "$MLTRAIN" print-monitor "$W/$best" 2>/dev/null | grep -q test_y_misclass ||
        echo "(print-monitor not available or without test_y_misclass)"
    ;;
mlp_tutorial_part_2)
    conf tutorials__multilayer_perceptron__mlp_tutorial_part_2.yaml job.yaml
    P="--param train_stop=2000 --param valid_stop=51000 --param dim_h0=32 --param max_epochs=2 --param save_path=$W"
    needs job.yaml $P
    run 0 job.yaml $P
    [ -s "$W/mlp_best.pkl" ] || fail "no mlp_best.pkl"
    ;;
softmax_regression)
    for f in sr_train sr_dataset sr_model sr_algorithm; do
        conf tutorials__softmax_regression__$f.yaml $f.yaml
    done
    P="--param dataset=@sr_dataset.yaml --param model=@sr_model.yaml --param algorithm=@sr_algorithm.yaml --param train_stop=2000 --param valid_stop=51000 --param batch_size=1000 --param save_path=$W"
    needs sr_train.yaml $P
    run 0 sr_train.yaml $P --max-epochs 2
    [ -s "$W/softmax_regression.pkl" ] || fail "no softmax_regression.pkl"
    ;;
conv)
    conf tutorials__convolutional_network__conv.yaml job.yaml
    P="--param train_stop=500 --param valid_stop=50200 --param test_stop=200 --param batch_size=50 --param output_channels_h2=8 --param output_channels_h3=8 --param max_epochs=1 --param save_path=$W"
    needs job.yaml $P
    run 0 job.yaml $P
    [ -s "$W/convolutional_network_best.pkl" ] || fail "no convolutional_network_best.pkl"
    ;;
dropout_mnist)
    # No templates: the file trains on all 60000 examples for 440 epochs; one epoch of 30
    # batches (and 30 monitoring batches) keeps the test short.
    conf papers__dropout__mnist.yaml mnist.yaml
    needs mnist.yaml
    run 0 mnist.yaml --max-epochs 1 --limit-batches 30
    [ "$(ckpt_epochs "$W/mnist.pkl")" = 1 ] || fail "mnist.pkl does not hold epoch 1"
    ;;
maxout_mnist_pi)
    conf papers__maxout__mnist_pi.yaml mnist_pi.yaml
    needs mnist_pi.yaml
    run 0 mnist_pi.yaml --max-epochs 2 --limit-batches 20
    [ -s "$W/mnist_pi_best.pkl" ] || fail "no mnist_pi_best.pkl"
    ;;
maxout_mnist_pi_continued)
    [ -s "$W/mnist_pi_best.pkl" ] || skip "needs cli.train.maxout_mnist_pi first"
    conf papers__maxout__mnist_pi_continued.yaml mnist_pi_continued.yaml
    needs mnist_pi_continued.yaml
    run 0 mnist_pi_continued.yaml --max-epochs 2 --limit-batches 20
    /usr/bin/python3 -c "import h5py,sys; f=h5py.File(sys.argv[1],'r'); assert 'monitor_stage_0' in f['monitors']" \
        "$W/mnist_pi_continued.pkl" || fail "no monitor_stage_0 in mnist_pi_continued.pkl"
    ;;
dae_l1)
    conf tutorials__stacked_autoencoders__dae_l1.yaml dae_l1.yaml
    P="--param train_stop=1000 --param nhid=32 --param batch_size=50 --param monitoring_batches=5 --param max_epochs=2 --param save_path=$W"
    needs dae_l1.yaml $P
    run 0 dae_l1.yaml $P
    grep -q "objective" "$W/out.txt" || fail "no objective channel (unnamed monitoring dataset)"
    [ -s "$W/dae_l1.pkl" ] || fail "no dae_l1.pkl"
    ;;
dae_l2)
    [ -s "$W/dae_l1.pkl" ] || skip "needs cli.train.dae_l1 first"
    conf tutorials__stacked_autoencoders__dae_l2.yaml dae_l2.yaml
    P="--param train_stop=1000 --param nvis=32 --param nhid=16 --param batch_size=50 --param monitoring_batches=5 --param max_epochs=2 --param save_path=$W"
    needs dae_l2.yaml $P
    run 0 dae_l2.yaml $P
    [ -s "$W/dae_l2.pkl" ] || fail "no dae_l2.pkl"
    ;;
dae_mlp)
    [ -s "$W/dae_l2.pkl" ] || skip "needs cli.train.dae_l2 first"
    conf tutorials__stacked_autoencoders__dae_mlp.yaml dae_mlp.yaml
    P="--param train_stop=1000 --param valid_stop=50500 --param batch_size=50 --param max_epochs=2 --param save_path=$W"
    needs dae_mlp.yaml $P
    run 0 dae_mlp.yaml $P
    grep -q "valid_y_misclass" "$W/out.txt" || fail "no valid_y_misclass"
    ;;
dry_run_ok)
    conf tutorials__multilayer_perceptron__mlp_tutorial_part_3.yaml job.yaml
    run 0 job.yaml $MLP_PARAMS --dry-run
    grep -q "dry run: OK" "$W/out.txt" || fail "no OK line"
    grep -q "valid_y_misclass" "$W/out.txt" || fail "channels not listed"
    [ ! -e "$W/mlp_2_best.pkl" ] || fail "the dry run trained"
    ;;
dry_run_unknown_key)
    cat > job.yaml <<'EOF'
!obj:Train {
    dataset: !obj:FashionMNIST { which_set: 'train', stop: 100 },
    model: !obj:MLP { nvis: 784, layers: [ !obj:Softmax { layer_name: 'y', n_classes: 10, irange: 0. } ] },
    algorithm: !obj:SGD { batch_size: 10, learning_rate: 0.1, batch_sise: 3 },
}
EOF
    run 1 job.yaml --dry-run
    grep -q "job.yaml:4:63: .*batch_sise.*did you mean 'batch_size'" "$W/out.txt" || fail "message"
    ;;
dry_run_layer_as_model)
    cat > job.yaml <<'EOF'
!obj:Train {
    dataset: !obj:FashionMNIST { which_set: 'train', stop: 100 },
    model: !obj:MLP { layer_name: 'inner', layers: [ !obj:Softmax { layer_name: 'y', n_classes: 10, irange: 0. } ] },
    algorithm: !obj:SGD { batch_size: 10, learning_rate: 0.1 },
}
EOF
    run 1 job.yaml --dry-run
    grep -q "job.yaml:3:12: model: this MLP has layer_name and neither nvis nor input_space" "$W/out.txt" || fail "message"
    ;;
dry_run_unknown_channel)
    conf tutorials__multilayer_perceptron__mlp_tutorial_part_3.yaml job.yaml
    sed 's/channel_name: "valid_y_misclass"/channel_name: "valid_y_misclas"/' job.yaml > typo.yaml
    run 1 typo.yaml $MLP_PARAMS --dry-run
    grep -q "typo.yaml:[0-9]*:[0-9]*: MonitorBased: unknown channel 'valid_y_misclas' (did you mean 'valid_y_misclass'?)" \
        "$W/out.txt" || fail "message"
    ;;
dry_run_missing_file)
    cat > job.yaml <<'EOF'
!obj:Train {
    dataset: !obj:FashionMNIST { which_set: 'train', stop: 100, path: '/nonexistent/fashion' },
    model: !obj:MLP { nvis: 784, layers: [ !obj:Softmax { layer_name: 'y', n_classes: 10, irange: 0. } ] },
    algorithm: !obj:SGD { batch_size: 10, learning_rate: 0.1 },
}
EOF
    run 1 job.yaml --dry-run
    grep -q "job.yaml:2:[0-9]*: .*/nonexistent/fashion" "$W/out.txt" || fail "message"
    ;;
resume_sigterm)
    # The command's exit code and message on a signal, then --resume finishing the run.
    conf tutorials__multilayer_perceptron__mlp_tutorial_part_3.yaml job.yaml
    P="--param train_stop=1000 --param valid_stop=50500 --param dim_h0=32 --param dim_h1=32 --param sparse_init_h1=15 --param max_epochs=3 --param save_path=$W"
    MLTRAIN_TEST_SIGNAL_AFTER_BATCHES=15 "$MLTRAIN" job.yaml $P > out.txt 2>&1
    rc=$?
    cat out.txt
    [ "$rc" = 3 ] || fail "exit code $rc after SIGTERM (expected 3)"
    grep -q "stopped by signal 15" out.txt || fail "no stop message"
    [ -s "$W/job.run/resume.ckpt" ] || fail "no resume.ckpt"
    run 0 job.yaml $P --resume
    grep -q "resuming from" "$W/out.txt" || fail "did not resume"
    grep -q "epoch 3/3 done" "$W/out.txt" || fail "did not finish"
    ;;
jobs_dry_run)
    for j in fashion_mnist_mlp fashion_mnist_conv fashion_mnist_lstm; do
        "$MLTRAIN" "$SRC/jobs/$j.yaml" --dry-run --run-dir "$W/$j.run" > dry.txt 2>&1
        rc=$?
        cat dry.txt
        if [ "$rc" != 0 ]; then
            if grep -q "unknown component" dry.txt; then
                echo "($j: $(grep -o "unknown component '[^']*'" dry.txt | head -1) not implemented yet)"
            else
                fail "dry run of jobs/$j.yaml"
            fi
        fi
    done
    ;;
*)
    fail "unknown case $CASE"
    ;;
esac
echo "PASS: $CASE"
