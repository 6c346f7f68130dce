module sessiond

go 1.26.8
