<?php
// A session the size of a shop cart or a CMS's user object: `items` entries of about 140
// bytes serialized (7 ≈ 1 KB, 145 ≈ 20 KB, 1450 ≈ 200 KB), built on the first request and
// changed a little on each one after (for the compression benchmark).
header('Content-Type: text/plain');
session_start();
$items = (int) ($_GET['items'] ?? 10);
if (!isset($_SESSION['cart']) || count($_SESSION['cart']) !== $items) {
    $_SESSION['user'] = ['id' => 4711, 'name' => 'Jane Example', 'roles' => ['customer', 'newsletter'], 'locale' => 'en_GB'];
    $_SESSION['cart'] = [];
    for ($i = 0; $i < $items; $i++) {
        $_SESSION['cart'][] = [
            'sku' => sprintf('SKU-%06d', 100000 + $i * 7),
            'title' => 'Product ' . $i . ' in category ' . ($i % 12),
            'qty' => $i % 4 + 1,
            'price' => round(4.99 + ($i % 97) * 1.25, 2),
            'added' => 1764100000 + $i * 37,
        ];
    }
}
$_SESSION['cart'][0]['qty']++;
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
echo $_SESSION['visits'], "\n";
