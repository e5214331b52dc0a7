#!/bin/sh
# Prints one Prometheus sample per CVMFS repository the centre expects to be mounted.
for repo in juno.ihep.ac.cn boss.cern.ch lhaaso.ihep.ac.cn; do
    if [ -d "/cvmfs/$repo" ]; then up=1; else up=0; fi
    echo "ihep_cvmfs_mounted{repository=\"$repo\"} $up"
done
