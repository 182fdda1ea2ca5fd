set terminal pngcairo size 1100,560 font 'sans,10' noenhanced
set output '/work/main/bench/results/chart.png'
set title 'Requests per second by session handler (higher is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -25 scale 0
set ylabel 'req/s'
set grid ytics
set key top right
set datafile separator '\t'
plot '/work/main/bench/results/results.csv' using 2:xtic(1) title '(a) increments, many sessions', '' using 3 title '(b) read-mostly (lazy_write)', '' using 5 title '(d) = (a) + 0.25 ms each way'
