module rke2gpu.test/render-config

go 1.26.0
